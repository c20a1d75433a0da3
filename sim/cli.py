"""Command line: ``python run_sim.py SCENARIO.yaml [flags]`` (also the ``storefront-sim`` script).

Flags from the seed override the scenario YAML. Every input problem is one line on stderr
naming the file, the field and the problem, exit code 2, and no file created or clobbered.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import functools
import os
import signal
import sys
import threading
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from sim.config import Scenario, ScenarioError, check_times, load_scenario
from sim.console import EXIT_FAILED, OneLineParser, bad_input, one_line
from sim.core.clock import default_today, resolve_time_expression
from sim.outputs.files import OutputError, check_output_dir
from sim.run.batch import print_summary, simulate
from sim.run.plan import faults_outside_window, resolve_run_window

LIVE_GIVE_UP_S = 6 * 3600.0
# streaming into a node on this machine, one worker was fastest: the node needs the other
# core (docs/performance.md, #15); a remote cluster leaves every core to the simulation
LOCAL_NODE_WORKERS = 1

# ``storefront-sim COMMAND ...``: commands other than running a scenario, each a module
# with ``main(argv) -> int``, or ``module:function`` for one of several in a module
# (imported only when used)
COMMANDS: dict[str, str] = {
    "inject": "sim.live.commands:inject",
    "faults": "sim.live.commands:faults",
    "clear": "sim.live.commands:clear",
    "replay": "sim.live.replay",
    "report": "sim.report",
    "split": "sim.truth.split",
}

# CLI flag -> scenario field it overrides
FLAG_FIELDS: dict[str, str] = {
    "days": "window.days",
    "start": "window.start",
    "end": "window.end",
    "incidents_per_day": "random_incidents.per_day",
    "error_rate_incident": "random_incidents.error_rate_incident",
    "base_tps": "traffic.base_tps",
    "peak_multiplier": "traffic.peak_multiplier",
    "error_rate_normal": "background_errors.error_rate_normal",
    "output_dir": "output.dir",
    "gzip": "output.gzip",
    "seed": "seed",
}


def build_parser() -> argparse.ArgumentParser:
    p = OneLineParser(prog="run_sim.py", description=__doc__.splitlines()[0],
                epilog=f"other commands: {', '.join(COMMANDS)} (run_sim.py COMMAND --help)")
    p.add_argument("scenario", nargs="?", help="scenario YAML (e.g. scenarios/baseline.yaml)")
    p.add_argument("--days", type=int, help="days to simulate, ending at 24:00 UTC of --today")
    p.add_argument("--today", help="the date runs end on and relative fault times resolve "
                                   "against (YYYY-MM-DD; default: current UTC date)")
    p.add_argument("--start", help="window start (ISO datetime or 'today 14:00'); with --end")
    p.add_argument("--end", help="window end (ISO datetime or 'today 15:00'); with --start")
    p.add_argument("--incidents-per-day", type=float, help="random incidents drawn per day")
    p.add_argument("--base-tps", type=float, help="base transactions per second (default 20)")
    p.add_argument("--peak-multiplier", type=float, help="peak traffic multiplier (default 2.5)")
    p.add_argument("--error-rate-normal", type=float,
                   help="everyday error rate in percent, before card declines (default 1.0)")
    p.add_argument("--error-rate-incident", type=float,
                   help="target error rate in percent for random incidents (scales their "
                        "fault magnitude)")
    p.add_argument("--seed", type=int, help="random seed (default: the scenario's)")
    p.add_argument("--output-dir", help="where NDJSON files go (default ./output)")
    p.add_argument("--no-files", action="store_true", help="write no NDJSON (stream only)")
    p.add_argument("--gzip", action="store_true", default=None,
                   help="write .ndjson.gz files (a sixth of the bytes; curl loads them with "
                        "Content-Encoding: gzip)")
    p.add_argument("--create-mapping-only", action="store_true",
                   help="write mapping.json to the output dir (and create the index if "
                        "--opensearch is given), then exit")
    p.add_argument("--opensearch", metavar="URL",
                   help="stream into OpenSearch at URL while simulating (or OPENSEARCH_URL)")
    p.add_argument("--index", help="index name (default: the scenario's output.index)")
    p.add_argument("--data-stream", metavar="NAME",
                   help="write to this data stream (e.g. logs-storefront-demo) instead of an "
                        "index: created with its composable template from mapping.json")
    p.add_argument("--ca-certs", help="CA bundle to verify the OpenSearch certificate")
    p.add_argument("--insecure", action="store_true",
                   help="do not verify the OpenSearch TLS certificate (warns)")
    p.add_argument("--workers", type=int, help="processes to simulate with (default: all "
                                               "cores; 1 when streaming into a local node)")
    p.add_argument("--resume", action="store_true",
                   help="continue a killed run into the same --output-dir from its finished "
                        "segments (same scenario and flags)")
    p.add_argument("--dask", metavar="ADDRESS",
                   help="run the segments as tasks on the Dask scheduler at ADDRESS, e.g. "
                        "tcp://10.0.0.5:8786 (or DASK_SCHEDULER_ADDRESS); pip install "
                        "'storefront-sim[dask]'")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.add_argument("--live", action="store_true",
                   help="backfill the window up to the wall clock, then go on in real time "
                        "until the window ends or SIGINT/SIGTERM")
    p.add_argument("--speed", type=float, default=1.0,
                   help="with --live: simulated seconds per wall-clock second (default 1)")
    p.add_argument("--bucket", type=float, default=1.0, metavar="SECONDS",
                   help="with --live: wall-clock bucket documents are sent in (default 1)")
    p.add_argument("--control", metavar="FILE",
                   help="with --live: the control file of runtime faults (default "
                        "OUTPUT_DIR/control.yaml)")
    p.add_argument("--report", action="store_true",
                   help="after the run, write OUTPUT_DIR/report/index.html (figures, incident "
                        "sections; as `storefront-sim report OUTPUT_DIR`)")
    p.add_argument("--engine", choices=("fast", "simpy"), default="fast",
                   help="event loop: fast (default, sim/core/engine.py) or simpy's own "
                        "Environment; same model, same bytes")
    return p


def _on_this_machine(url: str) -> bool:
    try:
        host = urlsplit(url).hostname or ""
    except ValueError:
        return False  # connect() reports it
    return host == "localhost" or host == "::1" or host.startswith("127.")


def load_from_args(args: argparse.Namespace) -> tuple[Scenario, dt.date]:
    source = args.scenario
    overrides: dict[str, Any] = {}
    flags: dict[str, str] = {}
    for attr, path in FLAG_FIELDS.items():
        value = getattr(args, attr)
        if value is not None:
            overrides[path] = value
            flags[path] = "--" + attr.replace("_", "-")
    if args.start is not None or args.end is not None:
        if args.start is None or args.end is None:
            raise ScenarioError(f"{source}: --start/--end: give both or neither")
        for flag in ("start", "end"):
            try:
                resolve_time_expression(getattr(args, flag), dt.date(2000, 1, 3))
            except ValueError as exc:
                raise ScenarioError(f"{source}: --{flag}: {exc}") from None
    scenario = load_scenario(source, overrides, flags)
    if args.today is not None:
        try:
            today = dt.date.fromisoformat(args.today)
        except ValueError:
            raise ScenarioError(
                f"{source}: --today: invalid date {args.today!r} (expected YYYY-MM-DD)"
            ) from None
    else:
        today = scenario.window.today or default_today()
    check_times(scenario, today, source)
    return scenario, today


def _future_notice(scenario: Scenario, today: dt.date) -> None:
    import time

    from sim.live.loop import future_notice

    line = future_notice(resolve_run_window(scenario, today), time.time())
    if line:
        print(line, file=sys.stderr)


def _interrupt(signum: int, frame: Any) -> None:
    raise KeyboardInterrupt


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv and argv[0] in COMMANDS:
        import importlib

        module, _, function = COMMANDS[argv[0]].partition(":")
        return int(getattr(importlib.import_module(module), function or "main")(argv[1:]))
    args = build_parser().parse_args(argv)
    if args.create_mapping_only:
        from sim.outputs.mapping import create_mapping_only

        return create_mapping_only(args)
    if not args.scenario:
        return bad_input("a scenario file is required (e.g. scenarios/baseline.yaml)")
    try:
        scenario, today = load_from_args(args)
    except ScenarioError as exc:
        return bad_input(str(exc))
    if args.workers is not None and args.workers < 1:
        return bad_input(f"{args.scenario}: --workers: must be at least 1")
    for flag in ("speed", "bucket"):
        if not getattr(args, flag) > 0:
            return bad_input(f"{args.scenario}: --{flag}: must be greater than 0")
    if not args.live and (args.speed != 1.0 or args.bucket != 1.0 or args.control):
        return bad_input(f"{args.scenario}: --speed, --bucket and --control need --live")
    if args.live and scenario.output.gzip:
        return bad_input(f"{args.scenario}: --gzip (output.gzip): a live run's NDJSON is tailed while "
                    "it grows, so it is written plain; drop --gzip with --live")
    output_dir = None if args.no_files else Path(scenario.output.dir)
    unusable = check_output_dir(output_dir) if output_dir is not None else None
    if unusable:
        return bad_input(unusable)
    url = args.opensearch or os.environ.get("OPENSEARCH_URL")
    dask = args.dask or os.environ.get("DASK_SCHEDULER_ADDRESS") or None
    stream = None
    workers = args.workers
    if workers is None and url and _on_this_machine(url):
        workers = LOCAL_NODE_WORKERS
    extra_sinks: list[Any] = []
    incident_sinks: list[Any] = []
    load_settings = contextlib.ExitStack()  # the index's bulk-load settings, restored at the end
    if url:
        from opensearchpy.exceptions import TransportError

        from sim.outputs.index_setup import (
            apply_ism_policy,
            bulk_load_settings,
            ensure_data_stream,
            ensure_index,
            load_mapping,
        )
        from sim.outputs.mapping import INCIDENTS_MAPPING_PATH, MAPPING_PATH
        from sim.outputs.opensearch import (
            OpenSearchSetupError,
            OpenSearchSink,
            connect,
            refusal,
            scrub_url,
        )

        if args.data_stream and args.index:
            return bad_input(f"{args.scenario}: --data-stream and --index: give one of them")
        index = args.data_stream or args.index or scenario.output.index
        incidents_index = scenario.output.incidents_index
        try:
            client = connect(url, ca_certs=args.ca_certs, insecure=args.insecure)
            if args.data_stream:
                ensure_data_stream(client, index, load_mapping(MAPPING_PATH))
                if not apply_ism_policy(client, index):
                    print(f"note: {scrub_url(url)} has no index-management plugin; the ISM "
                          "policy (sim/outputs/ism_policy.json) was not applied", file=sys.stderr)
            else:
                ensure_index(client, index, load_mapping(MAPPING_PATH))
            ensure_index(client, incidents_index, load_mapping(INCIDENTS_MAPPING_PATH))
        except OpenSearchSetupError as exc:
            return bad_input(str(exc))
        try:
            if not args.live:  # a live run ends the bulk-load settings itself, at the handoff
                load_settings.enter_context(bulk_load_settings(client, index))
        except TransportError as exc:  # e.g. a read-only block refuses the settings change
            err = exc.info.get("error") if isinstance(exc.info, dict) else None
            kind, reason = (err.get("type", ""), err.get("reason", "")) if isinstance(err, dict) \
                else (str(exc.error), "")
            print("error: " + (refusal(index, exc.status_code, kind, reason, whole_request=True)
                               or f"index {index!r} refused its bulk-load settings (HTTP "
                                  f"{exc.status_code} {kind})"), file=sys.stderr)
            return EXIT_FAILED
        # dead letters belong to the run's output, also when it writes no NDJSON
        out = Path(scenario.output.dir)
        # live: while OpenSearch is away the run waits (back-pressure) rather than give up
        give_up = {"give_up_after": LIVE_GIVE_UP_S} if args.live else {}
        if dask:  # the Dask workers stream their segments themselves (credentials: their env)
            from sim.run.parallel import StreamTarget

            stream = StreamTarget(scrub_url(url), index, args.ca_certs, args.insecure)
        else:
            extra_sinks.append(OpenSearchSink(client, index,
                                              dead_letter_path=out / "dead_letter.ndjson",
                                              **give_up))
        incident_sinks.append(OpenSearchSink(
            client, incidents_index, dead_letter_path=out / "dead_letter_incidents.ndjson",
            senders=1, name=f"opensearch:{incidents_index}", **give_up))
    elif args.no_files:
        return bad_input("--no-files needs --opensearch URL (or OPENSEARCH_URL): nothing would be written")
    for warning in faults_outside_window(scenario, today):
        print(f"warning: {one_line(f'{args.scenario}: {warning}')}", file=sys.stderr)
    if args.report and output_dir is None:
        return bad_input("--report needs the run's files: it cannot go with --no-files")
    bar = None
    progress = None
    if not args.quiet:
        from tqdm import tqdm

        window = resolve_run_window(scenario, today)
        segments = len(window.segments())
        total_h = (window.seconds + segments * scenario.window.warmup_minutes * 60.0) / 3600.0
        bar = tqdm(total=round(total_h, 2), unit="sim-h", file=sys.stderr, disable=None,
                   bar_format="{l_bar}{bar}| {n:.1f}/{total:.1f} sim-h [{elapsed}<{remaining}]")

        def progress(seconds: float) -> None:
            bar.update(seconds / 3600.0)

    from sim.run.parallel import SegmentError
    from sim.run.workspace import RunDirError

    main_thread = threading.current_thread() is threading.main_thread()
    if main_thread:  # SIGTERM like Ctrl-C: every exit path cleans up
        previous = signal.signal(signal.SIGTERM, _interrupt)
    run = functools.partial(simulate, scenario, today, output_dir, extra_sinks,
                            progress=progress, workers=workers,
                            incident_sinks=incident_sinks, engine=args.engine,
                            run_dir=Path(scenario.output.dir), resume=args.resume, dask=dask,
                            stream=stream)
    try:
        if args.live:
            from sim.live.loop import LiveWindowError, live_from_args

            try:
                result = live_from_args(args, scenario, today, output_dir, extra_sinks,
                                        incident_sinks, progress, bar,
                                        (client, index) if extra_sinks else None)
            except LiveWindowError as exc:
                return bad_input(f"{args.scenario}: --live: {exc}")
        else:
            _future_notice(scenario, today)
            with load_settings:
                result = run()
    except RunDirError as exc:
        return bad_input(str(exc))
    except SegmentError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_FAILED
    except OutputError as exc:
        print(f"error: {one_line(str(exc))}", file=sys.stderr)
        return EXIT_FAILED
    except KeyboardInterrupt:
        print("error: interrupted; no complete-looking output was left behind", file=sys.stderr)
        return 130
    finally:
        if main_thread:
            signal.signal(signal.SIGTERM, previous)
        if bar is not None:
            bar.close()
    print_summary(result)
    code = _sink_verdict(result.sinks)
    if code == 0 and args.report and output_dir is not None:
        from sim.report import build_report
        from sim.report.aggregate import ReportInputError

        try:
            print(f"report: {build_report(output_dir, args.workers)}", file=sys.stderr)
        except ReportInputError as exc:
            print(f"error: {exc}", file=sys.stderr)
            return EXIT_FAILED
    return code


def _sink_verdict(sinks: list[Any]) -> int:
    """One error line per sink that stopped or dead-lettered; exit 1 if any did (or lost
    track of a document), else 0."""
    code = 0
    run_stopped = any(s.details.get("stopped") for s in sinks)
    for s in sinks:
        stopped = s.details.get("stopped")
        if stopped:
            print(f"error: {stopped}", file=sys.stderr)
        elif s.unaccounted and not run_stopped:  # a stopped run leaves all sinks short
            print(f"error: {s.name}: {s.unaccounted:,} documents are unaccounted for (see the "
                  "sink summary)", file=sys.stderr)
        if s.dead_lettered:
            print(f"error: {s.name}: {s.dead_lettered:,} documents rejected for their content "
                  f"are in {s.details.get('dead_letter_path')}", file=sys.stderr)
        if run_stopped or s.unaccounted or s.dead_lettered:
            code = EXIT_FAILED
    return code


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
