"""``storefront-sim split [DIR]``: the seed's normal/incident/recovery files, cut from a finished run.

Why a command: the split files repeat ``all_data`` (a week: 13 GB more), so a run no longer
writes them by default (``output.split_files: true`` still does). This writes the very same
files afterwards from ``all_data.ndjson`` and the run's ``incidents.ndjson`` (or their
``.gz``, then the split files are ``.gz`` too).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from sim.console import program_name
from sim.truth.records import read_incidents, write_split_files


def _one(directory: Path, stem: str) -> Path | None:
    found = [p for p in (directory / f"{stem}.ndjson", directory / f"{stem}.ndjson.gz") if p.exists()]
    if len(found) > 1:  # the newer run's
        found.sort(key=lambda p: p.stat().st_mtime)
    return found[-1] if found else None


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # one line, exit 2
        print(f"error: split: {message}", file=sys.stderr)
        raise SystemExit(2)


def main(argv: list[str]) -> int:
    p = _Parser(prog=f"{program_name()} split", description=__doc__.splitlines()[0])
    p.add_argument("dir", nargs="?", default="./output", help="a run's output dir (default ./output)")
    args = p.parse_args(argv)
    directory = Path(args.dir)
    all_data = _one(directory, "all_data")
    incidents = _one(directory, "incidents")
    if all_data is None or incidents is None:
        missing = "all_data.ndjson" if all_data is None else "incidents.ndjson"
        print(f"error: {directory}: no {missing}[.gz] (run a scenario with --output-dir "
              f"{directory} first)", file=sys.stderr)
        return 2
    try:
        records = read_incidents(incidents)
    except (ValueError, OSError, EOFError) as exc:  # orjson.JSONDecodeError is a ValueError
        print(f"error: {incidents}: not a run's incidents file ({str(exc).splitlines()[0]})",
              file=sys.stderr)
        return 2
    try:
        paths = write_split_files(all_data, records)
    except (OSError, EOFError, StopIteration) as exc:
        print(f"error: {all_data}: cannot be read to the end ({exc or 'odd number of lines'})",
              file=sys.stderr)
        return 2
    for path in paths:
        print(path)
    return 0
