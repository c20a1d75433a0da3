"""Same scenario + same seed + same window = byte-identical output (golden test)."""

from __future__ import annotations

import datetime as dt
import hashlib
import subprocess
import sys
from pathlib import Path

import numpy as np

from sim.core.rng import RandomStreams

ROOT = Path(__file__).resolve().parent.parent


def run_cli(out: Path, *extra: str) -> bytes:
    subprocess.run(
        [sys.executable, str(ROOT / "run_sim.py"), str(ROOT / "scenarios" / "payment_timeout.yaml"),
         "--today", "2026-11-27", "--start", "today 14:20", "--end", "today 14:40",
         "--base-tps", "6", "--output-dir", str(out), "--quiet", *extra],
        check=True, capture_output=True, timeout=300,
    )
    return (out / "all_data.ndjson").read_bytes()


def test_same_seed_same_bytes_across_processes(tmp_path):
    first = run_cli(tmp_path / "a")
    second = run_cli(tmp_path / "b")
    assert len(first) > 100_000
    assert hashlib.sha256(first).digest() == hashlib.sha256(second).digest()


def test_other_seed_other_bytes(tmp_path):
    assert run_cli(tmp_path / "a") != run_cli(tmp_path / "c", "--seed", "7")


def test_no_wall_clock_in_documents(tmp_path):
    data = run_cli(tmp_path / "a")
    today = dt.datetime.now(dt.UTC).strftime("%Y-%m-%d").encode()
    if today != b"2026-11-27":
        assert today not in data


def test_streams_are_independent_of_each_other():
    """Adding or using another component's stream never shifts this one's numbers."""
    alone = RandomStreams(42).stream("db-query")
    a = [alone.random() for _ in range(10)]
    streams = RandomStreams(42)
    other = streams.stream("new-component")
    _ = [other.random() for _ in range(5000)]
    b = [streams.stream("db-query").random() for _ in range(1)]
    again = streams.stream("db-query")
    assert [again.random() for _ in range(10)] == a
    assert b[0] == a[0]
    assert not np.allclose(a, [RandomStreams(43).stream("db-query").random() for _ in range(10)])


def test_defaults_print_like_the_same_values_written_out(tmp_path):
    """A default and the same value spelled out in the YAML are one scenario: same bytes."""
    import yaml

    from sim.config import Scenario

    raw = yaml.safe_load((ROOT / "scenarios" / "payment_timeout.yaml").read_text())
    raw["storefront"] = Scenario.model_validate({"name": "x"}).storefront.model_dump(mode="json")
    spelled = tmp_path / "spelled.yaml"
    spelled.write_text(yaml.safe_dump(raw))
    args = ["--today", "2026-11-27", "--start", "today 14:20", "--end", "today 14:30",
            "--base-tps", "6", "--quiet"]
    outputs = []
    for name, scenario in (("default", ROOT / "scenarios" / "payment_timeout.yaml"),
                           ("spelled", spelled)):
        out = tmp_path / name
        subprocess.run([sys.executable, str(ROOT / "run_sim.py"), str(scenario), *args,
                        "--output-dir", str(out)], check=True, capture_output=True, timeout=300)
        outputs.append((out / "all_data.ndjson").read_bytes())
    assert b'"memory":{"used":' in outputs[0] and b'"limit":2147483648}' in outputs[0]  # 2048 MB
    assert outputs[0] == outputs[1]
