#!/usr/bin/env python3
"""Streaming a simulated window into OpenSearch against a plain ``_bulk`` load of the same
NDJSON: is the simulation the bottleneck, or the node's ingest?

    scripts/opensearch-node start
    python3 bench/streaming.py [--url URL] [--scenario S --start T --end T | --day] [--rounds 2]
                               [--engines fast,simpy] [--workers 1,2]

The window is generated to NDJSON once. Then, after a warm-up load (a fresh JVM indexes
several times slower until its JIT has compiled the indexing path), each round times
(a) ``run_sim.py --opensearch URL --no-files`` into a fresh index, with each engine and
each ``--workers`` count asked for, and (b) the simplest loader: ``all_data.ndjson``
POSTed in ~8 MB ``_bulk`` bodies, one at a time, into a fresh index with the same mapping;
both end with a refresh. Rounds alternate the order. Prints medians and the ratio
stream/plain (target: <= 1.05).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterable, Iterator
from pathlib import Path

import orjson
import urllib3

ROOT = Path(__file__).resolve().parent.parent
TODAY = "2026-11-27"


def chunks(path: Path, chunk_bytes: int) -> Iterator[bytes]:
    """``_bulk`` bodies of about ``chunk_bytes``, cut between an action and its document
    (read as they are sent: a day's NDJSON does not fit in memory twice)."""
    parts: list[bytes] = []
    size = 0
    with open(path, "rb") as fh:
        for action in fh:
            doc = fh.readline()
            parts += (action, doc)
            size += len(action) + len(doc)
            if size >= chunk_bytes:
                yield b"".join(parts)
                parts, size = [], 0
    if parts:
        yield b"".join(parts)


def plain_load(http: urllib3.PoolManager, url: str, index: str, bodies: Iterable[bytes]) -> float:
    mapping = json.loads((ROOT / "mapping.json").read_text())
    mapping.setdefault("settings", {})["refresh_interval"] = "-1"
    started = time.perf_counter()
    resp = http.request("PUT", f"{url}/{index}", body=json.dumps(mapping),
                        headers={"Content-Type": "application/json"})
    if resp.status != 200:
        raise SystemExit(f"create {index}: HTTP {resp.status} {resp.data[:300]!r}")
    for body in bodies:
        resp = http.request("POST", f"{url}/{index}/_bulk?filter_path=errors", body=body,
                            headers={"Content-Type": "application/x-ndjson"})
        if resp.status != 200 or orjson.loads(resp.data).get("errors"):
            raise SystemExit(f"plain loader: HTTP {resp.status} {resp.data[:300]!r}")
    http.request("PUT", f"{url}/{index}/_settings", body=b'{"index":{"refresh_interval":null}}',
                 headers={"Content-Type": "application/json"})
    http.request("POST", f"{url}/{index}/_refresh")
    return time.perf_counter() - started


def stream(url: str, index: str, window: list[str], engine: str, root: Path = ROOT,
           workers: str = "") -> float:
    """Wall seconds of ``run_sim.py --opensearch`` (from the tree ``root``)."""
    started = time.perf_counter()
    flags = [] if engine == "older" else ["--engine", engine]
    if workers:
        flags += ["--workers", workers]
    subprocess.run([sys.executable, str(root / "run_sim.py"), *window, "--opensearch", url,
                    "--index", index, "--no-files", "--quiet", *flags],
                   check=True, capture_output=True, cwd=root)
    return time.perf_counter() - started


def count(http: urllib3.PoolManager, url: str, index: str) -> int:
    return int(orjson.loads(http.request("GET", f"{url}/{index}/_count").data)["count"])


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--url", default=os.environ.get("OPENSEARCH_URL", "http://127.0.0.1:9200"))
    p.add_argument("--scenario", default="scenarios/payment_timeout.yaml")
    p.add_argument("--start", default="today 17:30")
    p.add_argument("--end", default="today 19:00")
    p.add_argument("--rounds", type=int, default=2)
    p.add_argument("--day", action="store_true", help="a whole day (--today's) instead")
    p.add_argument("--base-tps", default="", help="--base-tps for the window (default: the "
                                                  "scenario's)")
    p.add_argument("--engines", default="fast,simpy")
    p.add_argument("--workers", default="", help="comma-separated --workers counts to stream "
                                                 "with (default: the run's default)")
    p.add_argument("--chunk-mb", type=float, default=8.0)
    p.add_argument("--against", default="", metavar="COMMIT",
                   help="also stream from this older commit (compiled in a scratch worktree)")
    a = p.parse_args()
    window = [str(ROOT / a.scenario), "--today", TODAY,
              *(["--days", "1"] if a.day else ["--start", a.start, "--end", a.end]),
              *(["--base-tps", a.base_tps] if a.base_tps else [])]
    # what streams: engine, or engine and worker count ("fast/w2")
    engines = [f"{e}/w{w}" if w else e for e in a.engines.split(",")
               for w in (a.workers.split(",") if a.workers else [""])]
    http = urllib3.PoolManager()
    with tempfile.TemporaryDirectory(prefix="bench-stream-") as tmp:
        older = None
        if a.against:
            sys.path.insert(0, str(ROOT / "bench"))
            from generation import older_build

            older = older_build(a.against, Path(tmp))
            engines.append("older")
        t0 = time.perf_counter()
        subprocess.run([sys.executable, str(ROOT / "run_sim.py"), *window, "--output-dir", tmp,
                        "--quiet"], check=True, capture_output=True, cwd=ROOT)
        generate_s = time.perf_counter() - t0
        data = Path(tmp) / "all_data.ndjson"
        chunk_bytes = int(a.chunk_mb * 2**20)
        docs = sum(body.count(b"\n") for body in chunks(data, chunk_bytes)) // 2
        print(f"{docs:,} documents, {data.stat().st_size / 2**20:.0f} MB, generated to NDJSON in "
              f"{generate_s:.1f} s", file=sys.stderr)
        plain_load(http, a.url, "bench-warmup", chunks(data, chunk_bytes))  # warm the node's JIT
        http.request("DELETE", f"{a.url}/bench-warmup")
        times: dict[str, list[float]] = {"plain": [], **{e: [] for e in engines}}
        for r in range(a.rounds):
            order = ["plain", *engines] if r % 2 == 0 else [*engines, "plain"]
            for what in order:
                if what == "older" and older is None:
                    continue
                index = f"bench-{what.replace('/', '-')}-{r}"
                if what == "plain":
                    took = plain_load(http, a.url, index, chunks(data, chunk_bytes))
                else:
                    engine, _, workers = what.partition("/w")
                    took = stream(a.url, index, window, engine,
                                  older if what == "older" and older else ROOT, workers)
                n = count(http, a.url, index)
                if n != docs:
                    raise SystemExit(f"{index}: {n} documents, expected {docs}")
                times[what].append(took)
                print(f"  round {r + 1}: {what:6s} {took:6.1f} s", file=sys.stderr)
                http.request("DELETE", f"{a.url}/{index}")
                http.request("DELETE", f"{a.url}/ecommerce_performance_incidents")
    plain = statistics.median(times["plain"])
    span = (f"{TODAY}, whole day" if a.day else f"{a.start} .. {a.end}") + (
        f", base TPS {a.base_tps}" if a.base_tps else "")
    print(f"\n{docs:,} documents ({a.scenario} {span}); medians of {a.rounds} rounds\n")
    print("| load | s | docs/s | vs plain `_bulk` |")
    print("|---|---:|---:|---:|")
    print(f"| plain `_bulk` of the NDJSON | {plain:.1f} | {docs / plain:,.0f} | 1.00x |")
    for e in engines:
        t = statistics.median(times[e])
        engine, _, workers = e.partition("/w")
        what = f"at {a.against}" if e == "older" else f"--engine {engine}" + (
            f" --workers {workers}" if workers else "")
        print(f"| streaming while simulating, {what} | {t:.1f} | {docs / t:,.0f} | "
              f"{t / plain:.2f}x |")
    print(f"\n(generating the same window to NDJSON alone: {generate_s:.1f} s)")
    if older is not None:
        subprocess.run(["git", "-C", str(ROOT), "worktree", "remove", "--force", str(older)],
                       capture_output=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
