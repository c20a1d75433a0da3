#!/usr/bin/env python3
"""Bytes on disk of a run, as the seed laid it out and as it is now, and what ``--gzip`` costs.

    python3 bench/footprint.py [--scenario scenarios/demo_week.yaml] [--days 1] [--rounds 1]

Each round runs the same files-only window twice, plain and ``--gzip`` (order alternating),
and times them; then ``run_sim.py split`` cuts the seed's split files from each, so the
seed's layout (``all_data`` + split files, what a run wrote by default before #15) is
measured too. Prints the sizes, the extrapolation to a week (x 7 / days: a week of the
demo scenario is 7 such days) and the time ratio gzip/plain. Wall time on a shared machine
is noisy, so it also measures the CPU seconds that compressing the plain ``all_data`` takes
in this process (``DeterministicGzip``, the writer ``--gzip`` uses). Everything in one run:
the ratios are what to compare across machines, not the seconds.
"""

from __future__ import annotations

import argparse
import gzip
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from sim.outputs.ndjson import DeterministicGzip  # noqa: E402

TODAY = "2026-11-27"
GB = 1e9


def run(args: list[str]) -> float:
    started = time.perf_counter()
    subprocess.run([sys.executable, str(ROOT / "run_sim.py"), *args], check=True,
                   capture_output=True, cwd=ROOT)
    return time.perf_counter() - started


class _Counter:
    """A sink for compressed bytes that only counts them."""

    size = 0

    def write(self, data: bytes) -> None:
        self.size += len(data)

    def close(self) -> None:
        pass


def compress_cpu(path: Path) -> float:
    """CPU seconds of compressing ``path`` as --gzip does (output discarded)."""
    gz = DeterministicGzip(_Counter())  # type: ignore[arg-type]
    started = time.process_time()
    with open(path, "rb") as fh:
        while chunk := fh.read(4 << 20):
            gz.write(chunk)
    gz.close()
    return time.process_time() - started


def sizes(out: Path) -> dict[str, int]:
    return {p.name: p.stat().st_size for p in sorted(out.iterdir()) if p.is_file()}


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--scenario", default="scenarios/demo_week.yaml")
    p.add_argument("--days", type=int, default=1)
    p.add_argument("--rounds", type=int, default=1)
    p.add_argument("--workers", default="", help="--workers for the runs (default: the run's)")
    a = p.parse_args()
    base = [str(ROOT / a.scenario), "--today", TODAY, "--days", str(a.days), "--quiet"]
    if a.workers:
        base += ["--workers", a.workers]
    times: dict[str, list[float]] = {"plain": [], "gzip": []}
    with tempfile.TemporaryDirectory(prefix="bench-footprint-", dir=ROOT) as tmp:
        for r in range(a.rounds):
            for kind in ("plain", "gzip") if r % 2 == 0 else ("gzip", "plain"):
                out = Path(tmp) / kind
                flags = ["--gzip"] if kind == "gzip" else []
                times[kind].append(run([*base, "--output-dir", str(out), *flags]))
                print(f"round {r + 1} {kind:5s}: {times[kind][-1]:6.1f} s", file=sys.stderr)
        now = {k: sizes(Path(tmp) / k) for k in times}
        for k in times:
            started = time.perf_counter()
            run(["split", str(Path(tmp) / k)])
            print(f"split {k}: {time.perf_counter() - started:.1f} s", file=sys.stderr)
        seed = {k: sizes(Path(tmp) / k) for k in times}
        plain_all = Path(tmp) / "plain" / "all_data.ndjson"
        cpu = compress_cpu(plain_all)
        plain_all_size = plain_all.stat().st_size
        same = gzip.decompress((Path(tmp) / "gzip" / "all_data.ndjson.gz").read_bytes()) == \
            plain_all.read_bytes()
    week = 7 / a.days
    print(f"\n{a.scenario}, {a.days} day(s) ending {TODAY}; sizes in GB; week = x {week:g}\n")
    print("| layout | files | run | week (extrapolated) |")
    print("|---|---|---:|---:|")
    rows = [
        ("seed (split files written by every run)", "plain", seed["plain"]),
        ("now, default", "plain", now["plain"]),
        ("now, `--gzip`", "gzip", now["gzip"]),
        ("`--gzip` + `split`", "gzip", seed["gzip"]),
    ]
    for name, _, files in rows:
        total = sum(files.values())
        listing = ", ".join(f"{n} {b / GB:.2f}" for n, b in files.items() if b > 10**6)
        print(f"| {name} | {listing} | {total / GB:.2f} | {total * week / GB:.1f} |")
    plain_t, gzip_t = statistics.median(times["plain"]), statistics.median(times["gzip"])
    ratio = now["plain"]["all_data.ndjson"] / now["gzip"]["all_data.ndjson.gz"]
    print(f"\nwall: plain {plain_t:.1f} s, --gzip {gzip_t:.1f} s: x {gzip_t / plain_t:.2f} "
          f"(median of {a.rounds}); all_data compresses {ratio:.1f}:1; "
          f"decompressed equals plain: {same}")
    print(f"compressing all_data alone: {cpu:.1f} CPU-s ({plain_all_size / cpu / 1e6:.0f} MB/s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
