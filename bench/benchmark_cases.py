#!/usr/bin/env python3
"""What generating the investigation benchmark costs: N cases to files (all cores), and the
same N cases generated and streamed into OpenSearch (one case at a time, the node on the
other core), then each reference solver over them, in one invocation.

    python3 bench/benchmark_cases.py [--cases 20] [--seed 42] [--hours 2]
                                     [--opensearch http://127.0.0.1:9200]

The issue's aim: twenty cases of about two hours, generated and streamed, under 10 minutes on
a 2-core machine. Prints a Markdown table (paste it into docs/performance.md) and each
solver's overall scores; the case indices it streams (storefront-bench-SEED-case-NNN) are
deleted afterwards.
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


def cli(*args: str) -> float:
    """Wall seconds of one ``storefront-sim`` process (a fresh interpreter, as a user runs it)."""
    t0 = time.perf_counter()
    subprocess.run([sys.executable, str(ROOT / "run_sim.py"), *args], check=True,
                   stdout=subprocess.DEVNULL, cwd=ROOT)
    return time.perf_counter() - t0


def size(path: Path) -> int:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--cases", type=int, default=20)
    p.add_argument("--seed", type=int, default=42)
    p.add_argument("--hours", type=float, default=2.0)
    p.add_argument("--opensearch", help="also generate while streaming into this node")
    args = p.parse_args()
    common = ["--cases", str(args.cases), "--seed", str(args.seed), "--hours", str(args.hours)]
    rows = []
    with tempfile.TemporaryDirectory(prefix="bench-cases-") as tmp:
        files = Path(tmp) / "files"
        rows.append(("files, all cores", cli("benchmark", *common, "--output-dir", str(files)),
                     size(files / "cases")))
        if args.opensearch:
            streamed = Path(tmp) / "streamed"
            index_prefix = "bench-timing"
            rows.append(("files + streamed, one case at a time",
                         cli("benchmark", *common, "--output-dir", str(streamed),
                             "--opensearch", args.opensearch, "--index-prefix", index_prefix),
                         size(streamed / "cases")))
            from opensearchpy import OpenSearch
            OpenSearch(args.opensearch, timeout=120).indices.delete(
                index=f"{index_prefix}-{args.seed}-case-*", ignore_unavailable=True)
            shutil.rmtree(streamed)
        scores = {}
        for solver in ("naive", "rules"):
            sub = Path(tmp) / f"{solver}.json"
            took = cli("solve", str(files), "--solver", solver, "--output", str(sub))
            rows.append((f"solver {solver}", took, 0))
            out = Path(tmp) / f"{solver}-score.json"
            cli("score", str(files / "answers"), str(sub), "--json", str(out))
            scores[solver] = json.loads(out.read_text())["overall"]
    print(f"{args.cases} cases of {args.hours:g} h, seed {args.seed}\n")
    print("| step | wall s | per case s | case files |\n|---|---|---|---|")
    for name, took, nbytes in rows:
        files_gb = f"{nbytes / 1e9:.2f} GB" if nbytes else ""
        print(f"| {name} | {took:.0f} | {took / args.cases:.1f} | {files_gb} |")
    print()
    for solver, overall in scores.items():
        print(solver, json.dumps(overall, sort_keys=True))
    return 0


if __name__ == "__main__":
    sys.exit(main())
