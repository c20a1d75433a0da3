"""``storefront-sim report OUTPUT_DIR``: the run report of an existing output directory.

Bad input (not a run's output, a truncated or malformed all_data.ndjson, a broken
incidents.ndjson) is one line on stderr and exit 2; a missing incidents.ndjson is a
warning and the report goes on without incidents.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from sim.console import program_name

EXIT_BAD_INPUT = 2


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # one line, exit 2
        print(f"error: {message}", file=sys.stderr)
        raise SystemExit(EXIT_BAD_INPUT)


def build_report(output_dir: Path, workers: int | None = None) -> Path:
    """Read the run in ``output_dir`` and write its report; returns report/index.html.

    Raises ReportInputError (one line) on bad input; prints warnings to stderr."""
    from sim.report.aggregate import aggregate, default_workers
    from sim.report.output_dir import check_counts, open_run_dir

    run = open_run_dir(output_dir)
    for warning in run.warnings:
        print(f"warning: {warning}", file=sys.stderr)
    agg = aggregate(run.all_data, workers, span=run.window_minutes())
    check_counts(run, agg.docs, agg.lines)

    from sim.report.page import write_report
    from sim.report.series import build_series

    return write_report(run, build_series(agg), agg.docs, workers or default_workers())


def main(argv: list[str] | None = None) -> int:
    p = _Parser(prog=f"{program_name()} report",
                description="Write OUTPUT_DIR/report/index.html (figures, incident sections) "
                            "for a run's output directory.")
    p.add_argument("output_dir", help="a run's output directory (holds all_data.ndjson)")
    p.add_argument("--workers", type=int, help="processes reading the NDJSON (default: all cores)")
    args = p.parse_args(sys.argv[1:] if argv is None else argv)
    if args.workers is not None and args.workers < 1:
        print("error: --workers: must be at least 1", file=sys.stderr)
        return EXIT_BAD_INPUT
    from sim.report.aggregate import ReportInputError

    try:
        index = build_report(Path(args.output_dir), args.workers)
    except ReportInputError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except KeyboardInterrupt:
        print("error: interrupted; no report was left behind", file=sys.stderr)
        return 130
    print(f"report: {index}")
    return 0
