"""``storefront-sim replay OUTPUT_DIR/replay.yaml``: a live run repeated as a batch run.

A live run pins what it decided while it ran (its segment splits, where it stopped, the
faults applied at runtime with their simulated start and end) in ``replay.yaml``; this
writes the same documents, byte for byte, as fast as a batch run goes.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import yaml

from sim.console import program_name
from sim.run.batch import print_incidents, print_summary, simulate


def main(argv: list[str]) -> int:
    p = argparse.ArgumentParser(prog=f"{program_name()} replay", description=__doc__.splitlines()[0])
    p.add_argument("file", help="replay.yaml written by a --live run")
    p.add_argument("--output-dir", required=True, help="where the batch run's files go")
    p.add_argument("--workers", type=int, help="processes to simulate with (default: all cores)")
    args = p.parse_args(argv)
    from sim.live.loop import read_replay

    path = Path(args.file)
    try:
        scenario, today, pinned = read_replay(path)
    except FileNotFoundError:
        print(f"error: {path}: file not found", file=sys.stderr)
        return 2
    except (OSError, ValueError, KeyError, TypeError, yaml.YAMLError) as exc:
        print(f"error: {path}: not a replay file written by --live: {str(exc).splitlines()[0]}",
              file=sys.stderr)
        return 2
    result = simulate(scenario, today, Path(args.output_dir), workers=args.workers,
                      pinned=pinned)
    print_summary(result)
    print_incidents(result.incidents)
    return 0
