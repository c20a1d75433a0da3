#!/usr/bin/env python3
"""Report benchmark: the run report's time against the generation of the same data, and its
peak memory (issue #12: a week's report in at most 1/4 of its generation time, ≤ 500 MB).

    python bench/report.py [--days 7] [--keep DIR]      # generate N days, then report them
    python bench/report.py --output-dir DIR              # report an existing run (ratio
                                                         # against its run_summary wall time)
    python bench/report.py --output-dir DAY --stretch 7  # memory at a week's minutes (below)

Generation and report run as child processes of this one, one after the other, in the same
invocation (compare the ratio, not absolute numbers from different machines). Peak memory is
the largest sum of the resident sets of the report's whole process tree (the command, its
forkserver and its workers) sampled from /proc every 0.2 s: shared pages count once per
process, so this over- rather than under-states. Prints a Markdown table row.

The report's memory grows with the number of minutes (per-minute keys: hosts x fields, error
types), never with documents, and each worker holds one byte range. ``--stretch N`` measures
it at N days' worth of minutes without N days of disk: from a one-day run it writes a copy
that keeps every metric and error document but only every 20th transaction, repeated for N
days with shifted dates (incidents too), and reports that.
"""

from __future__ import annotations

import argparse
import datetime as dt
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


def stretch(day: Path, days: int, out: Path, keep_every: int = 20) -> None:
    """A thinned ``days``-day copy of the one-day run ``day`` (see the module docstring)."""
    summary = json.loads((day / "run_summary.json").read_text())
    date = summary["window"]["start"][:10]
    first = dt.date.fromisoformat(date)
    dates = [(first - dt.timedelta(days=k)).isoformat() for k in range(days)]
    out.mkdir(parents=True)
    counts: dict[str, int] = {}
    old = b'{"@timestamp":"' + date.encode()
    with open(out / "all_data.ndjson", "wb") as dst:
        for d in dates:
            new = b'{"@timestamp":"' + d.encode()
            n = 0
            with open(day / "all_data.ndjson", "rb") as src:
                for action in src:
                    doc = src.readline()
                    if doc[55:56] == b"t":
                        n += 1
                        if n % keep_every:
                            continue
                    kind = doc[55:58].decode()
                    kind = {"tra": "transaction", "err": "error"}.get(kind, "infrastructure_metric")
                    counts[kind] = counts.get(kind, 0) + 1
                    dst.write(action + doc.replace(old, new, 1))
    lines = (day / "incidents.ndjson").read_text().splitlines()
    with open(out / "incidents.ndjson", "w") as fh:
        for k, d in enumerate(dates):
            for line in lines:
                line = line.replace(f'"{date}T', f'"{d}T')
                fh.write(line.replace('"_id":"', f'"_id":"d{k}-').replace(
                    '"incident_id":"', f'"incident_id":"d{k}-') + "\n")
    summary["window"]["start"] = dates[-1] + summary["window"]["start"][10:]
    summary["counts"] = counts
    summary["total_documents"] = sum(counts.values())
    (out / "run_summary.json").write_text(json.dumps(summary))


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--days", type=int, default=7, help="days of scenarios/demo_week.yaml (default 7)")
    p.add_argument("--output-dir", type=Path, help="report this existing run instead of generating")
    p.add_argument("--keep", type=Path, help="generate into this directory and keep it")
    p.add_argument("--workers", type=int, help="--workers for generation and report")
    p.add_argument("--stretch", type=int, metavar="N",
                   help="with --output-dir of a one-day run: report a thinned N-day copy")
    a = p.parse_args()
    if a.stretch and not a.output_dir:
        p.error("--stretch needs --output-dir of a one-day run")
    workers = ["--workers", str(a.workers)] if a.workers else []
    tmp = None
    if a.stretch:
        tmp = tempfile.mkdtemp(prefix="bench-report-", dir=a.output_dir.parent)
        out = Path(tmp) / "stretched"
        print(f"writing a thinned {a.stretch}-day copy of {a.output_dir}...", file=sys.stderr)
        stretch(a.output_dir, a.stretch, out)
        gen_s = None
        label = f"{a.output_dir.name} stretched to {a.stretch} days (1/20 of the transactions)"
    elif a.output_dir:
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
              f"{f'{gen_s:.1f}' if gen_s else '-'} | {rep_s:.1f} | {ratio} | {rep_mb:.0f} MB |")
    finally:
        if tmp:
            shutil.rmtree(tmp, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
