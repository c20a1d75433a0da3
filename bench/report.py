#!/usr/bin/env python3
"""Report benchmark: the run report's time against the generation of the same data, and its
peak memory (issue #12: a week's report in at most 1/4 of its generation time, ≤ 500 MB).

    python bench/report.py [--days 7] [--keep DIR]      # generate N days, then report them
    python bench/report.py --output-dir DIR              # report an existing run (no ratio
                                                         # unless its run_summary has wall_time_s)

Generation and report run as child processes of this one, one after the other, in the same
invocation (compare the ratio, not absolute numbers from different machines). Peak memory is
the largest sum of the resident sets of the report's whole process tree (the command, its
forkserver and its workers) sampled from /proc every 0.2 s: shared pages count once per
process, so this over- rather than under-states. Prints a Markdown table row.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
TODAY = "2026-11-28"


def _tree_rss_kb(root: int) -> int:
    """Resident set of ``root`` and all its descendants together, from /proc."""
    parent: dict[int, int] = {}
    rss: dict[int, int] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/status") as fh:
                fields = dict(line.split(":", 1) for line in fh if ":" in line)
        except OSError:
            continue
        parent[int(entry)] = int(fields["PPid"])
        rss[int(entry)] = int(fields.get("VmRSS", "0 kB").split()[0])
    total = 0
    for pid, kb in rss.items():
        p = pid
        while p and p != root:
            p = parent.get(p, 0)
        if p == root:
            total += kb
    return total


def timed(cmd: list[str]) -> tuple[float, float]:
    """Run ``cmd``; (wall seconds, peak RSS of its process tree in MB)."""
    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    peak = 0
    stop = threading.Event()

    def sample() -> None:
        nonlocal peak
        while not stop.wait(0.2):
            peak = max(peak, _tree_rss_kb(proc.pid))

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    out, err = proc.communicate()
    wall = time.perf_counter() - t0
    stop.set()
    sampler.join()
    if proc.returncode != 0:
        sys.exit(f"failed ({proc.returncode}): {' '.join(cmd)}\n{err.decode()[-2000:]}")
    return wall, peak / 1024.0


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--days", type=int, default=7, help="days of scenarios/demo_week.yaml (default 7)")
    p.add_argument("--output-dir", type=Path, help="report this existing run instead of generating")
    p.add_argument("--keep", type=Path, help="generate into this directory and keep it")
    p.add_argument("--workers", type=int, help="--workers for generation and report")
    a = p.parse_args()
    workers = ["--workers", str(a.workers)] if a.workers else []
    tmp = None
    if a.output_dir:
        out = a.output_dir
        summary = json.loads((out / "run_summary.json").read_text())
        gen_s = summary.get("wall_time_s")
        label = str(out)
    else:
        if a.keep:
            out = a.keep
        else:
            tmp = tempfile.mkdtemp(prefix="bench-report-")
            out = Path(tmp) / "run"
        print(f"generating {a.days} day(s) of demo_week into {out}...", file=sys.stderr)
        gen_s, gen_mb = timed([sys.executable, "run_sim.py", "scenarios/demo_week.yaml",
                               "--days", str(a.days), "--today", TODAY, "--output-dir", str(out),
                               "--quiet", *workers])
        label = f"demo_week, {a.days} day(s)"
        print(f"  generation {gen_s:.1f} s, peak RSS (tree) {gen_mb:.0f} MB", file=sys.stderr)
    try:
        size = (out / "all_data.ndjson").stat().st_size
        summary = json.loads((out / "run_summary.json").read_text())
        docs = summary["total_documents"]
        print("reporting...", file=sys.stderr)
        rep_s, rep_mb = timed([sys.executable, "run_sim.py", "report", str(out), *workers])
        ratio = f"{rep_s / gen_s:.3f}" if gen_s else "n/a"
        print(f"  report {rep_s:.1f} s, peak RSS (tree) {rep_mb:.0f} MB", file=sys.stderr)
        incidents = len((out / "incidents.ndjson").read_text().splitlines()) // 2
        print("| run | all_data.ndjson | documents | incidents | generation s | report s | "
              "report / generation | report peak RSS (process tree) |")
        print("|---|---|---|---|---|---|---|---|")
        print(f"| {label} | {size / 1e9:.2f} GB | {docs:,} | {incidents} | "
              f"{gen_s:.1f} | {rep_s:.1f} | {ratio} | {rep_mb:.0f} MB |")
    finally:
        if tmp:
            shutil.rmtree(tmp, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
