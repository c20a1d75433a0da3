"""Deploys and feature flags (issue #20): a rolling deploy restarts real instances one at a
time, a bug a build carries runs on exactly the hosts that run it, and a flag acts through
the model's own mechanisms; every document names the build that served it."""

from __future__ import annotations

import json
import statistics
import subprocess
import sys
from pathlib import Path

from sim.model.feature_flags import FeatureFlags

ROOT = Path(__file__).resolve().parent.parent


def _run(tmp_path: Path, name: str, text: str, start: str, end: str, *flags: str
         ) -> tuple[list[dict], list[dict]]:
    scenario = tmp_path / f"{name}.yaml"
    scenario.write_text(text)
    out = tmp_path / name
    subprocess.run([sys.executable, str(ROOT / "run_sim.py"), str(scenario), "--today", "2026-11-27",
                    "--start", start, "--end", end, "--output-dir", str(out), "--quiet", *flags],
                   check=True, stdout=subprocess.DEVNULL)
    docs = [json.loads(line) for line in (out / "all_data.ndjson").read_text().splitlines()[1::2]]
    records = [json.loads(line) for line in (out / "incidents.ndjson").read_text().splitlines()[1::2]]
    return docs, records


def _deploy(at: str, extra: str = "") -> str:
    return f"seed: 7\nchanges:\n  - {{kind: deploy, id: d1, at: '{at}', version: '2.13.5'{extra}}}\n"


def _per_minute_errors(docs: list[dict]) -> dict[str, float]:
    counts: dict[str, list[int]] = {}
    for d in docs:
        if d["event_type"] == "transaction":
            c = counts.setdefault(d["@timestamp"][11:16], [0, 0])
            c[0] += 1
            c[1] += d["status"] == "error"
    return {k: 100.0 * e / n for k, (n, e) in counts.items()}


def test_a_harmless_rolling_deploy_restarts_one_host_at_a_time_and_raises_no_incident(tmp_path):
    """Each host is out once, never two at a time, in the order given, and comes back on the
    new build; the fleet absorbs it (no minute over 5% errors, no incident record). The same
    rollout without the pipeline's warm-up puts cold JITs straight into rotation: that one is
    an incident, so the warm-up, not luck, is what keeps the first one harmless."""
    docs, records = _run(tmp_path, "warm", _deploy("today 10:00"), "today 09:58", "today 10:14")
    metrics = [d for d in docs if d["event_type"] == "infrastructure_metric"
               and d["service"]["type"] == "app-instance"]
    stopped: dict[str, list[str]] = {}
    for d in metrics:
        if d["service"]["state"] == "stopped":
            stopped.setdefault(d["host"]["name"], []).append(d["@timestamp"])
    assert list(stopped) == ["app-01", "app-02", "app-03", "app-04"]  # each once, in order
    spans = [(min(ts), max(ts)) for ts in stopped.values()]
    assert all(a[1] < b[0] for a, b in zip(spans, spans[1:], strict=False))  # one at a time
    last = {d["host"]["name"]: d["service"]["version"] for d in metrics}
    assert set(last.values()) == {"2.13.5"}
    changes = [d for d in docs if d["event_type"] == "change"]
    assert [(d["host"]["name"], d["change"]["rollout"]["step"]) for d in changes] == [
        ("app-01", 1), ("app-02", 2), ("app-03", 3), ("app-04", 4)]
    assert "end" in changes[-1]["change"]["rollout"] and "end" not in changes[0]["change"]["rollout"]
    assert max(_per_minute_errors(docs).values()) < 5.0
    assert records == []

    _, cold = _run(tmp_path, "cold", _deploy("today 10:00", ", warmup_requests: 0"),
                   "today 09:58", "today 10:14")
    assert [r["incident_id"] for r in cold] == ["d1"]


def test_the_leak_runs_on_exactly_the_hosts_that_run_the_leaking_build(tmp_path):
    """2.14.0 leaks in checkout and goes to app-02 only: app-02's heap floor climbs from its
    restart into 2.14.0 on, the others' stays where it was; every transaction names the build
    of the host that served it."""
    text = ("seed: 3\nchanges:\n  - {kind: deploy, at: 'today 10:01', version: '2.14.0', "
            "hosts: [app-02], fault: {type: memory_leak, magnitude: 3.0}}\n")
    docs, _ = _run(tmp_path, "leak", text, "today 10:00", "today 10:16")
    metrics = [d for d in docs if d["event_type"] == "infrastructure_metric"
               and d["service"]["type"] == "app-instance"]
    flip = min(d["@timestamp"] for d in metrics if d["service"]["version"] == "2.14.0")

    def floor(host: str, lo: str, hi: str) -> float:
        return min(d["jvm"]["memory"]["used"] for d in metrics
                   if d["host"]["name"] == host and lo <= d["@timestamp"] < hi)

    late = ("2026-11-27T10:13", "2026-11-27T10:16")
    early = (flip, flip[:14] + f"{int(flip[14:16]) + 3:02d}")
    assert floor("app-02", *late) > floor("app-02", *early) + 300 * 2**20
    for host in ("app-01", "app-03", "app-04"):
        assert floor(host, *late) < floor(host, *early) + 100 * 2**20
    served = {(d["host"]["name"], d["service"].get("version"), d["@timestamp"] >= flip)
              for d in docs if d["event_type"] == "transaction" and d["host"]["name"] != "lb-01"}
    assert ("app-02", "2.14.0", False) not in served and ("app-02", "2.13.4", True) not in served
    assert {v for h, v, _ in served if h != "app-02"} == {"2.13.4"}


def test_a_flag_adds_its_calls_for_the_shoppers_it_is_served_to(tmp_path):
    """recommended_for_you for half of the shoppers: their product pages make a second
    recommendations call (upstream time up by about one call), the other half's do not; the
    flag service writes one change document, fleet-wide (no host); both engines agree."""
    text = ("seed: 5\nchanges:\n  - {kind: feature_flag, id: ff1, at: 'today 10:05', "
            "flag: recommended_for_you, share: 0.5}\n")
    docs, _ = _run(tmp_path, "fast", text, "today 10:00", "today 10:10", "--engine", "fast")
    _run(tmp_path, "simpy", text, "today 10:00", "today 10:10", "--engine", "simpy")
    assert (tmp_path / "fast" / "all_data.ndjson").read_bytes() == \
        (tmp_path / "simpy" / "all_data.ndjson").read_bytes()
    (change,) = [d for d in docs if d["event_type"] == "change"]
    assert "host" not in change and change["event"]["action"] == "feature_flag"
    assert change["change"]["settings"] == [{"name": "recommended_for_you", "old": "off", "new": "50%"}]
    flags = FeatureFlags()
    product = [d for d in docs if d["event_type"] == "transaction" and d["transaction"]["name"] == "product"
               and d["status"] == "success"]

    def upstream(after: bool, served: bool) -> float:
        return statistics.median(
            d["timing"]["upstream_time_ms"] for d in product
            if (d["@timestamp"] >= "2026-11-27T10:05:01") == after
            and flags.serves("recommended_for_you", 0.5, d["user"]["id"]) == served)

    before = upstream(False, True)
    assert abs(upstream(False, False) - before) < 15  # the same before the switch
    assert upstream(True, False) < before + 15
    assert upstream(True, True) > before + 40  # one more call, ~70 ms median
