"""Scaling of the Dask backend on this machine: one day to NDJSON with ``--workers 1``
(local), and on a local Dask cluster of 1 and of 2 worker processes, in one invocation.

    python3 bench/dask_scaling.py [--scenario scenarios/baseline.yaml] [--days 1]
                                  [--start 'today 08:00' --end 'today 16:00']

Efficiency with n workers = wall(1 Dask worker) / (n x wall(n Dask workers)). Every run must
write the same all_data.ndjson (sha256 checked). Needs the ``dask`` extra.
"""

from __future__ import annotations

import argparse
import hashlib
import shutil
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def _sha(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        while chunk := fh.read(1 << 24):
            h.update(chunk)
    return h.hexdigest()


def _join_rate(path: Path, tmp: Path) -> float:
    """MB/s of the parent's join (a part fed to the NDJSON sink), on this file."""
    from sim.outputs.ndjson import NdjsonSink
    from sim.run.parallel import feed_part

    sink = NdjsonSink(tmp / "joined.ndjson")
    t0 = time.perf_counter()
    feed_part(path, [sink])
    sink.close(True)
    rate = path.stat().st_size / 1e6 / (time.perf_counter() - t0)
    (tmp / "joined.ndjson").unlink()
    return rate


def _run(args: list[str], out: Path, keep: bool = False) -> tuple[float, str]:
    from sim.cli import main

    t0 = time.perf_counter()
    code = main([*args, "--output-dir", str(out), "--quiet"])
    wall = time.perf_counter() - t0
    if code != 0:
        raise SystemExit(f"run failed ({code}): {args}")
    sha = _sha(out / "all_data.ndjson")
    if not keep:
        shutil.rmtree(out)
    return wall, sha


def main() -> None:
    from distributed import LocalCluster

    import sim

    p = argparse.ArgumentParser()
    p.add_argument("--scenario", default=str(ROOT / "scenarios" / "baseline.yaml"))
    p.add_argument("--days", default="1")
    p.add_argument("--today", default="2026-11-27")
    p.add_argument("--start", help="a window instead of --days (with --end)")
    p.add_argument("--end")
    a = p.parse_args()
    base = [a.scenario, "--today", a.today,
            *(["--start", a.start, "--end", a.end] if a.start else ["--days", a.days])]
    compiled = bool(sim.compiled_modules(Path(sim.__file__).parent))
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        rows.append(("--workers 1 (local)", 1,
                     *_run([*base, "--workers", "1"], Path(tmp) / "l", keep=True)))
        all_data = Path(tmp) / "l" / "all_data.ndjson"
        join = _join_rate(all_data, Path(tmp))
        size_mb = all_data.stat().st_size / 1e6
        shutil.rmtree(Path(tmp) / "l")
        for n in (1, 2):
            with LocalCluster(n_workers=n, threads_per_worker=1, processes=True,
                              host="127.0.0.1", dashboard_address=None) as cluster:
                wall, sha = _run([*base, "--dask", cluster.scheduler_address], Path(tmp) / f"d{n}")
            rows.append((f"--dask, LocalCluster of {n}", n, wall, sha))
    if len({r[3] for r in rows}) != 1:
        raise SystemExit("outputs differ between runs")
    one = rows[1][2]
    print(f"{a.scenario} {' '.join(base[3:])}; compiled: {compiled}; python {sys.version.split()[0]}")
    print("| run | workers | wall s | speed-up vs 1 Dask worker | efficiency |")
    print("|---|---:|---:|---:|---:|")
    for name, n, wall, _ in rows:
        print(f"| {name} | {n} | {wall:.1f} | {one / wall:.2f}x | {one / (n * wall):.0%} |")
    print(f"all_data.ndjson identical in every run: sha256 {rows[0][3][:16]}...")
    print(f"all_data.ndjson {size_mb:,.0f} MB; the parent joins parts at {join:,.0f} MB/s")


if __name__ == "__main__":
    main()
