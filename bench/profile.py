#!/usr/bin/env python3
"""Where a transaction's CPU goes, on the compiled build: ``perf`` samples of one run (the
parent and its segment worker), each sample's own function put in a part of the pipeline,
and the warm-up's share from a second run without it.

    python3 bench/profile.py [--scenario scenarios/baseline.yaml]
                             [--start 'today 17:00' --end 'today 18:00'] [--freq 999]

Needs ``perf`` (Debian: linux-perf) and the package compiled (``bash scripts/ensure-installed``).
Self time only: CPython's own functions (the interpreter running the code that is not
compiled, object allocation, reference counting, the garbage collector) are one part,
whatever called them; a compiled function's share is its own code. Prints a Markdown table
(paste it into docs/performance.md).
"""

from __future__ import annotations

import argparse
import re
import shutil
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
TODAY = "2026-11-27"

# mypyc names a compiled function CPyDef_<module>___<Class>___<name> (CPyPy_ for its Python
# entry point): the module says which part of the pipeline it belongs to
MODULE_PARTS = {
    "engine": "engine (events, timeouts, processes)",
    "rng": "random draws (our buffered streams)",
    "recorder": "recording (recorder, minutes, alert cells)",
    "minutes": "recording (recorder, minutes, alert cells)",
    "documents": "documents (building the JSON bytes)",
    "spans": "traces (spans)",
}
MODEL_MODULES = ("app_instance", "endpoints", "load_balancer", "shoppers", "request", "customers",
                 "state_log", "everyday", "traffic", "service", "cpu", "db", "worker_pool", "cache",
                 "circuit_breaker", "dependencies", "jvm_heap")
DSO_PARTS = (
    ("orjson", "encoding (orjson)"),
    ("_generator", "random draws (numpy)"), ("_bounded_integers", "random draws (numpy)"),
    ("_pcg64", "random draws (numpy)"), ("numpy", "numpy (other)"),
    ("libz", "compression (zlib)"),
    ("[kernel", "kernel (writes, page faults, scheduling)"),
    ("libc", "libc (memcpy, malloc)"),
    ("libpython", "CPython (interpreted code, allocation, refcounts, GC)"),
    ("python3", "CPython (interpreted code, allocation, refcounts, GC)"),
)
SYMBOL = re.compile(r"CPy(?:Def|Py|L)_([a-z_]+?)___")
LINE = re.compile(r"^\s*([\d.]+)%\s+(\S+)\s+\[[.k]\]\s+(.*)$")


def part_of(dso: str, symbol: str) -> str:
    m = SYMBOL.match(symbol)
    if m:
        module = m.group(1)
        if module in MODULE_PARTS:
            return MODULE_PARTS[module]
        if module in MODEL_MODULES:
            return "model (requests, resources, shoppers)"
        return f"compiled, other ({module})"
    if symbol.startswith("CPy") or dso.startswith("storefront_sim__mypyc"):
        return "mypyc runtime helpers"
    for needle, part in DSO_PARTS:
        if needle in dso:
            return part
    return f"other ({dso})"


def cli(out: Path, scenario: str, start: str, end: str, warmup: bool,
        perf: list[str] | None = None) -> float:
    """CPU seconds (user + system, the worker included) of one run."""
    args = [sys.executable, str(ROOT / "run_sim.py"), scenario, "--today", TODAY, "--start", start,
            "--end", end, "--workers", "1", "--output-dir", str(out), "--quiet"]
    if not warmup:  # the same scenario, its segment starting cold at the window's start
        import yaml
        raw = yaml.safe_load((ROOT / scenario).read_text())
        raw.setdefault("window", {})["warmup_minutes"] = 0
        flat = out.parent / "no-warmup.yaml"
        flat.write_text(yaml.safe_dump(raw))
        args[2] = str(flat)
    shutil.rmtree(out, ignore_errors=True)
    # perf stat counts every descendant: the segment worker is the forkserver's child, not
    # ours, so getrusage(RUSAGE_CHILDREN) would miss it
    stat = out.parent / f"{out.name}.stat"
    subprocess.run(["perf", "stat", "-x,", "-e", "task-clock", "-o", str(stat), "--",
                    *(perf or []), *args], check=True, stdout=subprocess.DEVNULL,
                   stderr=subprocess.DEVNULL, cwd=ROOT)
    line = next(x for x in stat.read_text().splitlines() if "task-clock" in x)
    return float(line.split(",")[0]) / 1000.0


def transactions(out: Path) -> int:
    import json
    return int(json.loads((out / "run_summary.json").read_text())["counts"]["transaction"])


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--scenario", default="scenarios/baseline.yaml")
    p.add_argument("--start", default="today 17:00")
    p.add_argument("--end", default="today 18:00")
    p.add_argument("--freq", type=int, default=999)
    args = p.parse_args()
    if not shutil.which("perf"):
        print("needs perf (apt-get install linux-perf)", file=sys.stderr)
        return 2
    with tempfile.TemporaryDirectory(prefix="profile-") as tmp:
        work = Path(tmp)
        data = work / "perf.data"
        t0 = time.perf_counter()
        cpu = cli(work / "out", args.scenario, args.start, args.end, True,
                  ["perf", "record", "-q", "-F", str(args.freq), "-o", str(data), "--"])
        wall = time.perf_counter() - t0
        tx = transactions(work / "out")
        plain = cli(work / "plain", args.scenario, args.start, args.end, True)
        flat = cli(work / "flat", args.scenario, args.start, args.end, False)
        report = subprocess.run(["perf", "report", "-i", str(data), "--no-children", "--stdio",
                                 "--sort", "dso,sym", "--percent-limit", "0"],
                                capture_output=True, text=True, check=True).stdout
    shares: dict[str, float] = defaultdict(float)
    top: dict[str, list[tuple[float, str]]] = defaultdict(list)
    for line in report.splitlines():
        m = LINE.match(line)
        if m:
            pct, dso, symbol = float(m.group(1)), m.group(2), m.group(3).strip()
            part = part_of(dso, symbol)
            shares[part] += pct
            top[part].append((pct, symbol))
    total = sum(shares.values()) or 1.0
    print(f"{args.scenario} {args.start} .. {args.end}: {tx:,} transactions; CPU {plain:.1f} s "
          f"({plain / tx * 1e6:.0f} us per transaction, start-up and warm-up included; "
          f"{cpu:.1f} s under perf record, {wall:.1f} s wall)\n")
    print("| part | share of CPU | us per transaction | biggest functions |\n|---|---|---|---|")
    for part, pct in sorted(shares.items(), key=lambda kv: -kv[1]):
        if pct / total < 0.003:
            continue
        biggest = ", ".join(f"{_short(s)} {p:.1f}%" for p, s in sorted(top[part], reverse=True)[:3])
        print(f"| {part} | {pct / total:.1%} | {pct / total * plain / tx * 1e6:.1f} | {biggest} |")
    print(f"\nsegment warm-up (10 simulated minutes before the window): {plain - flat:.1f} s of "
          f"{plain:.1f} s CPU ({(plain - flat) / plain:.0%}), from a run with warmup_minutes 0")
    return 0


def _short(symbol: str) -> str:
    return re.sub(r"^CPy(?:Def|Py|L)_", "", symbol)[:60]


if __name__ == "__main__":
    sys.exit(main())
