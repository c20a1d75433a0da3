#!/usr/bin/env python3
"""Live mode's cost: CPU share of one core at --speed 1, and the highest --speed it sustains.

    python3 bench/live.py [--seconds 60] [--speeds 1,10,20,40,80] [--base-tps 20] [--url URL]

Each speed runs a live run in this process on the real wall clock: a short backfill (the
window starts 20 minutes ago, plus the warm-up), then ``--seconds`` of live buckets after
the handoff, writing NDJSON (and streaming to ``--url`` if given). Reported per speed: CPU
seconds of this process (simulation, sinks and their threads) per wall second after the
handoff, and the most the run fell behind the wall clock. A speed is sustained when it never
fell more than two buckets behind. Traffic follows the daily schedule: the hour of day is
printed, because the evening peak carries about twice the night's requests.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from sim.config import load_scenario  # noqa: E402
from sim.live.loop import LiveOptions, LiveRun  # noqa: E402
from sim.model.traffic import DailySchedule  # noqa: E402


def one(speed: float, seconds: float, base_tps: float, url: str | None) -> dict[str, float]:
    now = time.time()
    iso = lambda t: dt.datetime.fromtimestamp(t, dt.UTC).strftime("%Y-%m-%dT%H:%M:00")  # noqa: E731
    scenario = load_scenario(ROOT / "scenarios" / "baseline.yaml", {
        "window.start": iso(now - 1200), "window.end": iso(now + 2 * 86400 - 1200),
        "traffic.base_tps": base_tps, "random_incidents.per_day": 0})
    sinks = []
    out = Path(tempfile.mkdtemp(prefix="bench-live-"))
    if url:
        from sim.outputs.index_setup import ensure_index, load_mapping
        from sim.outputs.mapping import MAPPING_PATH
        from sim.outputs.opensearch import OpenSearchSink, connect

        client = connect(url)
        index = f"bench-live-{os.getpid()}-{int(speed)}"
        ensure_index(client, index, load_mapping(MAPPING_PATH))
        sinks.append(OpenSearchSink(client, index, dead_letter_path=out / "dead.ndjson"))
    mark: dict[str, float] = {}

    def handoff() -> None:
        mark["cpu"], mark["wall"] = time.process_time(), time.time()
        threading.Timer(seconds, run.request_stop).start()

    run = LiveRun(scenario, dt.datetime.fromtimestamp(now, dt.UTC).date(), out, sinks,
                  workers=1, options=LiveOptions(speed=speed, on_handoff=handoff,
                                                 handle_signals=False, log=lambda _: None))
    result = run.run()
    cpu, wall = time.process_time() - mark["cpu"], time.time() - mark["wall"]
    if url:
        client.indices.delete(index=index)
    return {"cpu_share": cpu / wall, "max_lag_s": result.live["max_lag_s"],
            "docs_per_s": result.total / max(wall, 1e-9)}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--seconds", type=float, default=60.0)
    p.add_argument("--speeds", default="1,10,20,40,80")
    p.add_argument("--base-tps", type=float, default=20.0)
    p.add_argument("--url", help="also stream to this OpenSearch")
    args = p.parse_args()
    now = time.time()
    rate = DailySchedule(args.base_tps, 2.5).rate(now)
    print(f"{dt.datetime.now(dt.UTC):%H:%M} UTC: schedule {rate:.0f} TPS at base {args.base_tps:g}; "
          f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores; "
          f"compiled: {'no' if os.environ.get('STOREFRONT_SIM_PURE_PYTHON') == '1' else 'if built'}")
    sustained = None
    for speed in (float(s) for s in args.speeds.split(",")):
        r = one(speed, args.seconds, args.base_tps, args.url)
        ok = r["max_lag_s"] <= 2.0
        print(f"speed {speed:>5g}: cpu {r['cpu_share']:.3f} of a core, max lag "
              f"{r['max_lag_s']:.1f} s{'' if ok else ' (falls behind)'}", flush=True)
        if ok:
            sustained = speed
        else:
            break
    print(f"highest sustained speed: {sustained}")


if __name__ == "__main__":
    main()
