"""The printed summary names each incident from its ground-truth record and says what to do
next with the run's own paths; --quiet prints neither."""

from __future__ import annotations

import contextlib
import io
from pathlib import Path
from typing import Any

import orjson
import pytest

from sim.cli import main

ROOT = Path(__file__).resolve().parent.parent
PAYMENT = [str(ROOT / "scenarios" / "payment_timeout.yaml"), "--today", "2026-11-27",
           "--start", "today 14:10", "--end", "today 14:50", "--workers", "1"]


def _run(argv: list[str]) -> tuple[int, str]:
    err = io.StringIO()
    with contextlib.redirect_stderr(err):
        code = main(argv)
    return code, err.getvalue()


def _records(out: Path) -> list[dict[str, Any]]:
    lines = (out / "incidents.ndjson").read_bytes().splitlines()
    return [orjson.loads(line) for line in lines[1::2]]


@pytest.fixture(scope="module")
def payment(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    out = tmp_path_factory.mktemp("payment")
    code, err = _run([*PAYMENT, "--output-dir", str(out)])
    assert code == 0, err
    return out, err


def test_summary_names_the_incident_as_its_record_says(payment: tuple[Path, str]) -> None:
    out, err = payment
    [rec] = _records(out)
    assert rec["observed"]
    lines = err.splitlines()
    head = next(i for i, line in enumerate(lines) if rec["incident_id"] in line)
    assert rec["incident_type"] in lines[head]
    block = lines[head + 1:head + 5]
    cause = next(line for line in block if line.split()[0] == "cause")
    assert rec["cause"]["fault_type"] in cause
    symptoms = next(line for line in block if line.split()[0] == "symptoms")
    start, end = rec["symptom_start"], rec["symptom_end"]
    assert f"{start[:10]} {start[11:16]} .. {end[11:16]} UTC" in symptoms
    first = next(line for line in block if line.split()[:2] == ["first", "saturated"])
    assert rec["first_saturated"]["component"] in first and \
        rec["first_saturated"]["event"] in first
    impact = next(line for line in block if line.split()[0] == "impact")
    assert f"{rec['impact']['errors']:,} failed requests" in impact
    assert f"{rec['impact']['failed_orders']:,} failed orders" in impact


def test_summary_ends_with_the_next_commands_for_this_run(payment: tuple[Path, str]) -> None:
    out, err = payment
    after = err.split("\nnext:\n", 1)[1].splitlines()
    assert after[0].strip() == f"storefront-sim report {out}"
    bulk = next(line for line in after if "_bulk" in line)
    assert f"--data-binary @{out / 'all_data.ndjson'}" in bulk


def test_a_run_without_incidents_prints_no_incident_block_but_the_next_commands(
        tmp_path: Path) -> None:
    code, err = _run([str(ROOT / "scenarios" / "baseline.yaml"), "--today", "2026-11-27",
                      "--start", "today 03:00", "--end", "today 03:30", "--base-tps", "2",
                      "--incidents-per-day", "0", "--workers", "1", "--output-dir", str(tmp_path)])
    assert code == 0, err
    assert _records(tmp_path) == []
    assert not any(line.strip().startswith("incident ") for line in err.splitlines())
    assert f"storefront-sim report {tmp_path}" in err.split("\nnext:\n", 1)[1]


def test_quiet_prints_neither_incidents_nor_next_commands(tmp_path: Path) -> None:
    code, err = _run([*PAYMENT, "--output-dir", str(tmp_path), "--quiet"])
    assert code == 0, err
    [rec] = _records(tmp_path)
    assert "total" in err  # the counts stay
    assert rec["incident_id"] not in err and "next:" not in err and "report" not in err
