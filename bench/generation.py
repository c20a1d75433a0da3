#!/usr/bin/env python3
"""Generation benchmark: simulated transactions/s on both engines and on an older commit,
the orjson floor, peak memory, workers.

    python bench/generation.py [--quick] [--skip-week] [--against COMMIT]

Every measurement runs in a fresh child process (so peak RSS is that run's own) and all of
them run in one invocation on the same machine: compare the ratios, not absolute numbers
from different machines. ``--against`` (default: the last commit before the model became
SimPy processes) is checked out into a scratch worktree and compiled like this one, and
its baseline day runs in the same invocation. Prints a Markdown table (paste it into
docs/performance.md).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
TODAY = "2026-11-27"
BEFORE_PROCESSES = "2c1998a"  # the callback model, before issue #10


def _tree_rss_kb(root: int) -> tuple[int, int]:
    """(sum, largest) resident set of ``root`` and all its descendants, from /proc."""
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
        pid = int(entry)
        parent[pid] = int(fields["PPid"])
        rss[pid] = int(fields.get("VmRSS", "0 kB").split()[0])
    tree = [pid for pid in rss if _descends(pid, root, parent)]
    return sum(rss[p] for p in tree), max((rss[p] for p in tree), default=0)


def _descends(pid: int, root: int, parent: dict[int, int]) -> bool:
    while pid and pid != root:
        pid = parent.get(pid, 0)
    return pid == root


class _TreeRssSampler(threading.Thread):
    """Peak memory of the whole run: the parent plus its worker processes at the same moment
    (a worker's own peak RSS misses the parent's, and getrusage misses forkserver children)."""

    def __init__(self) -> None:
        super().__init__(daemon=True)
        self.stop = threading.Event()
        self.peak_sum_kb = 0
        self.peak_one_kb = 0

    def run(self) -> None:
        while not self.stop.wait(0.25):
            total, largest = _tree_rss_kb(os.getpid())
            self.peak_sum_kb = max(self.peak_sum_kb, total)
            self.peak_one_kb = max(self.peak_one_kb, largest)


def _child(root: str, args: list[str]) -> None:
    """Run one simulation in this process and print its measurements as JSON."""
    sys.path.insert(0, root)
    from sim.cli import main

    sampler = _TreeRssSampler()
    sampler.start()
    t0 = time.perf_counter()
    code = main(args)
    wall = time.perf_counter() - t0
    sampler.stop.set()
    sampler.join()
    out_dir = Path(args[args.index("--output-dir") + 1])
    summary = json.loads((out_dir / "run_summary.json").read_text())
    self_kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    child_kb = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    print(json.dumps({
        "code": code, "wall_s": wall, "counts": summary["counts"],
        "total": summary["total_documents"],
        "bytes": (out_dir / "all_data.ndjson").stat().st_size,
        "peak_rss_mb": max(self_kb, child_kb, sampler.peak_one_kb) / 1024.0,
        "peak_tree_rss_mb": sampler.peak_sum_kb / 1024.0,
    }))


def measure(label: str, scenario: str, extra: list[str], workdir: Path, root: Path = ROOT) -> dict:
    out = workdir / label.replace(" ", "_").replace(",", "")
    args = [str(root / scenario), "--today", TODAY, "--output-dir", str(out), "--quiet", *extra]
    proc = subprocess.run([sys.executable, __file__, "--child", str(root), json.dumps(args)],
                          capture_output=True, text=True, check=True, cwd=root)
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    result["label"] = label
    result["out"] = str(out)
    tx = result["counts"].get("transaction", 0)
    result["tx_per_s"] = tx / result["wall_s"]
    print(f"  {label}: {tx:,} transactions, {result['total']:,} docs in {result['wall_s']:.1f} s "
          f"({result['tx_per_s']:,.0f} tx/s), peak RSS {result['peak_rss_mb']:.0f} MB "
          f"(all processes together {result['peak_tree_rss_mb']:.0f} MB)", file=sys.stderr)
    return result


def orjson_floor(ndjson: Path, sample: int = 300_000) -> float:
    """Seconds per document to serialize the very same documents with orjson alone."""
    import orjson

    docs, ids = [], []
    with open(ndjson, "rb") as fh:
        for i, line in enumerate(fh):
            if i % 2 == 0:
                ids.append(orjson.loads(line)["index"]["_id"])
            else:
                docs.append(orjson.loads(line))
                if len(docs) >= sample:
                    break
    best = float("inf")
    for _ in range(3):
        t0 = time.perf_counter()
        parts = []
        for doc_id, doc in zip(ids, docs, strict=True):
            parts.append(b'{"index":{"_id":"' + doc_id.encode() + b'"}}\n' + orjson.dumps(doc) + b"\n")
        b"".join(parts)
        best = min(best, time.perf_counter() - t0)
    return best / len(docs)


def older_build(commit: str, workdir: Path) -> Path:
    """A worktree of ``commit`` with its hot path compiled in place, as an install would."""
    tree = workdir / f"at-{commit}"
    subprocess.run(["git", "-C", str(ROOT), "worktree", "add", "--detach", "-f", str(tree), commit],
                   check=True, capture_output=True)
    if os.environ.get("STOREFRONT_SIM_PURE_PYTHON") != "1":
        print(f"  compiling {commit} (mypyc, ~2 min)...", file=sys.stderr)
        subprocess.run([sys.executable, "setup.py", "build_ext", "--inplace"], cwd=tree,
                       check=True, capture_output=True)
    return tree


def _hot_path() -> str:
    """Whether the children ran the mypyc-compiled modules (see setup.py) or the sources."""
    sys.path.insert(0, str(ROOT))
    import sim

    modules = sim.compiled_modules(ROOT / "sim")
    if not modules or os.environ.get("STOREFRONT_SIM_PURE_PYTHON") == "1":
        return "Python sources"
    if sim.stale_modules(modules):
        return "Python sources (compiled modules are stale)"
    return f"compiled with mypyc ({len(modules)} modules)"


def main() -> int:
    if len(sys.argv) > 3 and sys.argv[1] == "--child":
        _child(sys.argv[2], json.loads(sys.argv[3]))
        return 0
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true", help="2 simulated hours instead of a day")
    p.add_argument("--skip-week", action="store_true", help="skip the 7-day demo_week runs")
    p.add_argument("--against", default=BEFORE_PROCESSES, metavar="COMMIT",
                   help=f"older commit to compare with (default {BEFORE_PROCESSES}; '' for none)")
    a = p.parse_args()
    cores = os.cpu_count() or 1
    day = ["--start", "today 12:00", "--end", "today 14:00"] if a.quick else ["--days", "1"]
    rows = []
    with tempfile.TemporaryDirectory(prefix="bench-") as tmp:
        work = Path(tmp)
        print("measuring (each run in a fresh process)...", file=sys.stderr)
        engines = []
        if a.against:
            old = older_build(a.against, work)
            try:
                engines.append(measure(f"baseline 1 day, 1 worker, at {a.against}",
                                       "scenarios/baseline.yaml", [*day, "--workers", "1"], work,
                                       root=old))
            finally:
                subprocess.run(["git", "-C", str(ROOT), "worktree", "remove", "--force", str(old)],
                               capture_output=True)
        one_day_1 = measure("baseline 1 day, 1 worker", "scenarios/baseline.yaml",
                            [*day, "--workers", "1"], work)
        engines.append(one_day_1)
        engines.append(measure("baseline 1 day, 1 worker, --engine simpy",
                               "scenarios/baseline.yaml",
                               [*day, "--workers", "1", "--engine", "simpy"], work))
        rows.extend(engines)
        if not a.quick:
            rows.append(measure(f"baseline 1 day, {cores} workers", "scenarios/baseline.yaml",
                                [*day, "--workers", str(cores)], work))
        if not a.skip_week and not a.quick:
            for workers in (1, cores):
                label = f"demo_week 7 days, {workers} worker{'s' if workers > 1 else ''}"
                rows.append(measure(label, "scenarios/demo_week.yaml",
                                    ["--workers", str(workers)], work))
                shutil.rmtree(rows[-1]["out"])  # ~13 GB each
        floor = orjson_floor(Path(one_day_1["out"]) / "all_data.ndjson")
    sim_per_doc = one_day_1["wall_s"] / one_day_1["total"]
    print()
    print(f"Machine: {cores} cores; Python {sys.version.split()[0]}; hot path: {_hot_path()}; "
          f"command: `python bench/generation.py{' --quick' if a.quick else ''}`")
    print()
    print("| run | transactions | documents | wall s | tx/s | tx/s per core used "
          "| peak RSS MB (largest process) | peak RSS MB (all processes) |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|")
    for r in rows:
        used = 1 if "1 worker" in r["label"] else cores
        tx = r["counts"].get("transaction", 0)
        print(f"| {r['label']} | {tx:,} | {r['total']:,} | {r['wall_s']:.1f} | "
              f"{r['tx_per_s']:,.0f} | {r['tx_per_s'] / used:,.0f} | {r['peak_rss_mb']:.0f} | "
              f"{r['peak_tree_rss_mb']:.0f} |")
    print()
    print("| engine | tx/s per core | vs this commit's fast engine | vs the older commit |")
    print("|---|---:|---:|---:|")
    for r in engines:
        older = engines[0]["tx_per_s"] if a.against else float("nan")
        print(f"| {r['label']} | {r['tx_per_s']:,.0f} | "
              f"{r['tx_per_s'] / one_day_1['tx_per_s']:.2f}x | {r['tx_per_s'] / older:.2f}x |")
    print()
    print(f"orjson-only floor: {floor * 1e6:.2f} µs/document; full simulation (1 worker): "
          f"{sim_per_doc * 1e6:.2f} µs/document; ratio simulation/floor = "
          f"{sim_per_doc / floor:.1f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
