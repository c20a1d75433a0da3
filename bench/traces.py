#!/usr/bin/env python3
"""What traces cost: generation time without traces, with the default sampling and with
every trace kept, in one invocation (each run a fresh CLI process, the three interleaved
``--repeat`` times, the fastest of each kept), and the bytes each writes.

    python3 bench/traces.py [--scenario scenarios/baseline.yaml]
                            [--start 'today 12:00' --end 'today 14:00'] [--repeat 2]
                            [--opensearch URL [--stream-end 'today 12:30']]

The issue's bars: default sampling at most 1.3x the time without traces, every trace kept
at most 3x. Prints a Markdown table (paste it into docs/performance.md); compare ratios,
not absolute numbers from different machines.

With ``--opensearch``, also a run streaming with the default sampling (start to
``--stream-end``) against a plain ``_bulk`` load of the same four files into the same node
(the documents and logs into a fresh index with the run's mapping, spans and edges into the
otel indices, which are deleted before and after: do not point it at a node whose Trace
Analytics data matters).
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

FILES = ("all_data.ndjson", "otel-v1-apm-span.ndjson", "otel-v1-apm-service-map.ndjson",
         "logs.ndjson")


def run(scenario: str, start: str, end: str, out: Path, sample: float | None) -> float:
    """Wall seconds of one CLI run into ``out`` (one worker: one core for the simulation)."""
    cmd = [sys.executable, str(ROOT / "run_sim.py"), scenario, "--today", "2026-11-27",
           "--start", start, "--end", end, "--workers", "1", "--output-dir", str(out), "--quiet"]
    if sample is not None:
        cmd += ["--trace-sample", str(sample)]
    shutil.rmtree(out, ignore_errors=True)
    t0 = time.perf_counter()
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return time.perf_counter() - t0


def measure(out: Path) -> dict[str, float]:
    """Transactions, kept traces, spans and bytes of one run's files."""
    counts = json.loads((out / "run_summary.json").read_text())["counts"]
    figures: dict[str, float] = {"transactions": counts.get("transaction", 0)}
    spans = out / FILES[1]
    if spans.exists():
        roots = total = 0
        with open(spans, "rb") as fh:
            for i, line in enumerate(fh):
                if i % 2:
                    total += 1
                    roots += b'"parentSpanId":""' in line
        figures.update(spans=total, traces=roots)
    for name in FILES:
        path = out / name
        figures[name] = path.stat().st_size if path.exists() else 0
    return figures


def _post_all(http: object, url: str, path: Path, index: str) -> None:
    from urllib3 import PoolManager

    sys.path.insert(0, str(ROOT / "bench"))
    from streaming import chunks

    assert isinstance(http, PoolManager)
    for body in chunks(path, 8 << 20):
        resp = http.request("POST", f"{url}/{index}/_bulk?filter_path=errors", body=body,
                            headers={"Content-Type": "application/x-ndjson"})
        if resp.status != 200 or b'"errors":true' in resp.data:
            raise SystemExit(f"plain load of {path.name}: HTTP {resp.status} {resp.data[:300]!r}")


def streaming(url: str, scenario: str, start: str, end: str, tmp: Path) -> tuple[float, float]:
    """(wall s streaming with the default sampling, wall s of a plain load of its files)."""
    import yaml
    from opensearchpy import OpenSearch
    from urllib3 import PoolManager

    from sim.config import TracesConfig
    from sim.outputs.index_setup import template_name
    from sim.outputs.trace_indices import FIRST_SPAN_INDEX, ensure_trace_indices
    from sim.telemetry.spans import SERVICE_MAP_INDEX, SPAN_INDEX

    client, http = OpenSearch(url), PoolManager()
    otel = f"{FIRST_SPAN_INDEX},{SERVICE_MAP_INDEX}"
    out = tmp / "stream"
    client.indices.delete(index=otel, ignore_unavailable=True)
    own = tmp / "scenario.yaml"  # its own incidents index: the node may hold others' runs
    raw = yaml.safe_load(Path(scenario).read_text())
    raw.setdefault("output", {})["incidents_index"] = "bench-traces-incidents"
    own.write_text(yaml.safe_dump(raw))
    cmd = [sys.executable, str(ROOT / "run_sim.py"), str(own), "--today", "2026-11-27", "--start",
           start, "--end", end, "--output-dir", str(out), "--quiet", "--opensearch", url,
           "--index", "bench-traces-stream", "--trace-sample", str(TracesConfig().sample_share)]
    t0 = time.perf_counter()
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    streamed = time.perf_counter() - t0
    client.indices.delete(index=f"bench-traces-stream,bench-traces-incidents,{otel}",
                          ignore_unavailable=True)
    ensure_trace_indices(client)
    mapping = json.loads((ROOT / "mapping.json").read_text())
    t0 = time.perf_counter()
    client.indices.create(index="bench-traces-plain", body=mapping)
    for name, index in ((FILES[0], "bench-traces-plain"), (FILES[3], "bench-traces-plain"),
                        (FILES[1], SPAN_INDEX), (FILES[2], SERVICE_MAP_INDEX)):
        _post_all(http, url, out / name, index)
    client.indices.refresh(index=f"bench-traces-plain,{otel}")
    plain = time.perf_counter() - t0
    client.indices.delete(index=f"bench-traces-plain,{otel}", ignore_unavailable=True)
    for name in ("bench-traces-stream", "bench-traces-incidents"):
        client.indices.delete_index_template(name=template_name(name), ignore=[404])
    return streamed, plain


def main() -> int:
    from sim.config import TracesConfig

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--scenario", default=str(ROOT / "scenarios" / "baseline.yaml"))
    p.add_argument("--start", default="today 12:00")
    p.add_argument("--end", default="today 14:00")
    p.add_argument("--repeat", type=int, default=2)
    p.add_argument("--opensearch", metavar="URL")
    p.add_argument("--stream-end", default="today 12:30")
    p.add_argument("--stream-only", action="store_true")
    args = p.parse_args()
    if args.opensearch:
        with tempfile.TemporaryDirectory(prefix="bench-traces-") as tmp:
            streamed, plain = streaming(args.opensearch, args.scenario, args.start,
                                        args.stream_end, Path(tmp))
        print(f"streaming with traces {streamed:.1f} s, plain _bulk of its files {plain:.1f} s: "
              f"{streamed / plain:.2f}x\n")
        if args.stream_only:
            return 0
    default = TracesConfig().sample_share
    configs = {"no traces": None, f"default sampling ({default:g})": default, "every trace": 1.0}
    best: dict[str, float] = {}
    figures: dict[str, dict[str, float]] = {}
    with tempfile.TemporaryDirectory(prefix="bench-traces-") as tmp:
        for _ in range(args.repeat):
            for name, sample in configs.items():
                out = Path(tmp) / name.split()[0]
                took = run(args.scenario, args.start, args.end, out, sample)
                best[name] = min(best.get(name, took), took)
                figures[name] = measure(out)
    base = best["no traces"]
    print(f"{Path(args.scenario).stem} {args.start}-{args.end}, 1 worker, fastest of {args.repeat}\n")
    print("| run | wall s | vs no traces | kept traces | spans/kept trace | spans/transaction "
          "| all_data MB | spans MB | logs KB |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|")
    for name in configs:
        f = figures[name]
        tx, traces, spans = f["transactions"], f.get("traces", 0), f.get("spans", 0)
        print(f"| {name} | {best[name]:.1f} | {best[name] / base:.2f}x | "
              f"{traces:,.0f} ({100 * traces / tx:.1f}%) | {spans / traces if traces else 0:.1f} | "
              f"{spans / tx:.2f} | {f[FILES[0]] / 1e6:.1f} | {f[FILES[1]] / 1e6:.1f} | "
              f"{f[FILES[3]] / 1e3:.1f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
