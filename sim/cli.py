"""Command line: ``storefront-sim SCENARIO.yaml [flags]`` (or ``python run_sim.py ...``) and
``storefront-sim COMMAND ...`` for everything else, one surface.

Flags from the seed override the scenario YAML. Every input problem is one line on stderr
naming the file, the field and the problem, exit code 2, and no file created or clobbered.
A run is a sequence of named steps (``main``): validate, set up the outputs, execute, judge.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import os
import signal
import sys
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from sim.config import Scenario, ScenarioError, check_times, load_scenario
from sim.console import EXIT_FAILED, OneLineParser, bad_input, one_line, program_name
from sim.core.clock import default_today, resolve_time_expression, resolve_window
from sim.outputs.files import OutputError, check_output_dir
from sim.run.batch import RunResult, print_incidents, print_summary, simulate
from sim.run.plan import faults_outside_window, resolve_run_window

LIVE_GIVE_UP_S = 6 * 3600.0
# streaming into a node on this machine, one worker was fastest: the node needs the other
# core (docs/performance.md, #15); a remote cluster leaves every core to the simulation
LOCAL_NODE_WORKERS = 1

DESCRIPTION = ("Run a scenario: simulate the storefront and write its observability documents\n"
               "(NDJSON files, OpenSearch).")

# ``storefront-sim COMMAND ...``: commands other than running a scenario, each a module
# with ``main(argv) -> int``, or ``module:function`` for one of several in a module
# (imported only when used), and its line in ``--help``
COMMANDS: dict[str, tuple[str, str]] = {
    "inject": ("sim.live.commands:inject", "add a fault to a live run's control file"),
    "change": ("sim.live.commands:change", "add a config push, deploy or flag to a live run's control file"),
    "faults": ("sim.live.commands:faults", "list a live run's runtime faults, changes and what it applied"),
    "clear": ("sim.live.commands:clear", "end a runtime fault of a live run"),
    "alerts": ("sim.live.alert_list", "list a run's active and recently resolved alerts"),
    "replay": ("sim.live.replay", "repeat a live run as a batch run, from its replay.yaml"),
    "report": ("sim.report", "write the report (figures, incidents) of a run's output dir"),
    "split": ("sim.truth.split", "write a finished run's normal/incident/recovery files"),
    "dashboards": ("sim.outputs.dashboards", "import the OpenSearch Dashboards saved objects"),
    "monitors": ("sim.outputs.alert_monitors", "the alert rules as OpenSearch Alerting monitors"),
    "benchmark": ("sim.benchmark.generate", "generate investigation cases (answers kept apart)"),
    "score": ("sim.benchmark.score", "score a submission against a benchmark's answers"),
    "solve": ("sim.benchmark.solve", "answer a benchmark's cases with a reference solver"),
}

# CLI flag -> scenario field it overrides
FLAG_FIELDS: dict[str, str] = {
    "days": "window.days",
    "start": "window.start",
    "end": "window.end",
    "incidents_per_day": "random_incidents.per_day",
    "distractors_per_day": "distractors.per_day",
    "error_rate_incident": "random_incidents.error_rate_incident",
    "base_tps": "traffic.base_tps",
    "peak_multiplier": "traffic.peak_multiplier",
    "error_rate_normal": "background_errors.error_rate_normal",
    "output_dir": "output.dir",
    "gzip": "output.gzip",
    "trace_sample": "output.traces.sample_share",
    "seed": "seed",
}


def build_parser() -> argparse.ArgumentParser:
    """The parser of a scenario run; its help lists the other commands, one line each."""
    commands = "\n".join(f"  {name:<12}{summary}" for name, (_, summary) in COMMANDS.items())
    p = OneLineParser(prog=program_name(), formatter_class=argparse.RawDescriptionHelpFormatter,
                      usage="%(prog)s SCENARIO.yaml [options]\n"
                            "       %(prog)s COMMAND ...   (%(prog)s COMMAND --help)",
                      description=f"{DESCRIPTION}\n\ncommands:\n{commands}")
    p.add_argument("scenario", nargs="?", help="scenario YAML (e.g. scenarios/baseline.yaml)")
    _add_scenario_flags(p)
    _add_output_flags(p)
    _add_run_flags(p)
    return p


def _add_scenario_flags(p: argparse.ArgumentParser) -> None:
    """Flags that override the scenario's window, traffic, incidents and seed."""
    p.add_argument("--days", type=int, help="days to simulate, ending at 24:00 UTC of --today")
    p.add_argument("--today", help="the date runs end on and relative fault times resolve "
                                   "against (YYYY-MM-DD; default: current UTC date)")
    p.add_argument("--start", help="window start (ISO datetime or 'today 14:00'); with --end, "
                                   "or alone with --live (then until stopped)")
    p.add_argument("--end", help="window end (ISO datetime or 'today 15:00'); with --start")
    p.add_argument("--incidents-per-day", type=float, help="random incidents drawn per day")
    p.add_argument("--distractors-per-day", type=float,
                   help="benign changes and anomalies drawn per day (leads that are not causes)")
    p.add_argument("--base-tps", type=float, help="base transactions per second (default 20)")
    p.add_argument("--peak-multiplier", type=float, help="peak traffic multiplier (default 2.5)")
    p.add_argument("--error-rate-normal", type=float,
                   help="everyday error rate in percent, before card declines (default 1.0)")
    p.add_argument("--error-rate-incident", type=float,
                   help="target error rate in percent for random incidents (scales their "
                        "fault magnitude)")
    p.add_argument("--seed", type=int, help="random seed (default: the scenario's)")


def _add_output_flags(p: argparse.ArgumentParser) -> None:
    """Where the documents go: NDJSON files, an OpenSearch index or data stream."""
    p.add_argument("--output-dir", help="where NDJSON files go (default ./output)")
    p.add_argument("--no-files", action="store_true", help="write no NDJSON (stream only)")
    p.add_argument("--gzip", action="store_true", default=None,
                   help="write .ndjson.gz files (a sixth of the bytes; curl loads them with "
                        "Content-Encoding: gzip)")
    p.add_argument("--trace-sample", type=float, metavar="SHARE",
                   help="write distributed traces too (otel-v1-apm-span*.ndjson), keeping every "
                        "failed or slow trace and this share (0-1) of the rest")
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


def _add_run_flags(p: argparse.ArgumentParser) -> None:
    """How the run goes: workers, resume, Dask, progress, live mode, report, engine."""
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
                        "until the window ends (--end, or 24:00 UTC of --today) or "
                        "SIGINT/SIGTERM")
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
    open_end = bool(args.live) and args.start is not None and args.end is None
    if (args.start is None) != (args.end is None) and not open_end:
        raise ScenarioError(f"{source}: --start/--end: give both or neither")
    for flag in ("start", "end"):
        try:
            if getattr(args, flag) is not None:
                resolve_time_expression(getattr(args, flag), dt.date(2000, 1, 3))
        except ValueError as exc:
            raise ScenarioError(f"{source}: --{flag}: {exc}") from None
    if args.trace_sample is not None:
        overrides["output.traces.enabled"] = True
    if open_end:  # the window's end needs today, which may come from the scenario
        del overrides["window.start"]
    scenario = load_scenario(source, overrides, flags)
    today = _today(args, scenario)
    if open_end:
        scenario = _until_stopped(scenario, args.start, today, source)
    check_times(scenario, today, source)
    return scenario, today


def _today(args: argparse.Namespace, scenario: Scenario) -> dt.date:
    """The date the run ends on: --today, else the scenario's, else the current UTC date."""
    if args.today is None:
        return scenario.window.today or default_today()
    try:
        return dt.date.fromisoformat(args.today)
    except ValueError:
        raise ScenarioError(
            f"{args.scenario}: --today: invalid date {args.today!r} (expected YYYY-MM-DD)"
        ) from None


def _until_stopped(scenario: Scenario, start: str, today: dt.date, source: str) -> Scenario:
    """``--live --start T`` without ``--end``: from T until stopped, that is up to the end a
    live run of whole days has (24:00 UTC of ``today``)."""
    try:
        end = resolve_window(1, today).end
        begins = resolve_time_expression(start, today)
    except ValueError as exc:
        raise ScenarioError(f"{source}: --start: {exc}") from None
    if begins >= end:
        raise ScenarioError(f"{source}: --start: {start!r} is not before 24:00 UTC of {today}, "
                            "where a --live run without --end stops; give --end too")
    window = scenario.window.model_copy(update={"start": start, "end": end.isoformat()})
    return scenario.model_copy(update={"window": window})


def _future_notice(scenario: Scenario, today: dt.date) -> None:
    import time

    from sim.live.loop import future_notice

    line = future_notice(resolve_run_window(scenario, today), time.time())
    if line:
        print(line, file=sys.stderr)


def _interrupt(signum: int, frame: Any) -> None:
    raise KeyboardInterrupt


class _Exit(Exception):
    """Ends the command early with this exit code; its message is already printed."""

    def __init__(self, code: int) -> None:
        super().__init__(code)
        self.code = code


def _refuse(message: str) -> _Exit:
    """Bad input: its one line printed; raise the result to end with exit 2."""
    return _Exit(bad_input(message))


@dataclass
class _Outputs:
    """Where a run's documents go, as the setup step left it for the run."""

    output_dir: Path | None  # the NDJSON files' dir; None with --no-files
    workers: int | None
    dask: str | None
    extra_sinks: list[Any] = field(default_factory=list)
    incident_sinks: list[Any] = field(default_factory=list)
    alert_sinks: list[Any] = field(default_factory=list)
    stream: Any = None  # the Dask workers' StreamTarget
    bulk_index: tuple[Any, str] | None = None  # (client, index) a live run bulk-loads into
    trace_sinks: dict[str, Any] = field(default_factory=dict)  # trace file -> its sink
    # the index's bulk-load settings of a batch run, restored at its end
    load_settings: contextlib.ExitStack = field(default_factory=contextlib.ExitStack)


def main(argv: list[str] | None = None) -> int:
    """``storefront-sim COMMAND ...``, or a scenario run: the exit code."""
    argv = sys.argv[1:] if argv is None else argv
    if argv and argv[0] in COMMANDS:
        return run_command(argv[0], argv[1:])
    args = build_parser().parse_args(argv)
    if args.create_mapping_only:
        from sim.outputs.mapping import create_mapping_only

        return create_mapping_only(args)
    try:
        scenario, today = _validated(args)
        outputs = _set_up_outputs(args, scenario)
        for warning in faults_outside_window(scenario, today):
            print(f"warning: {one_line(f'{args.scenario}: {warning}')}", file=sys.stderr)
        result = _execute(args, scenario, today, outputs)
    except _Exit as exit_:
        return exit_.code
    print_summary(result)
    if not args.quiet:
        print_incidents(result.incidents)
    code = _sink_verdict(result.sinks)
    if code == 0 and not args.quiet:
        _print_next_commands(args, scenario, outputs)
    if code == 0 and args.report and outputs.output_dir is not None:
        return _write_report(outputs.output_dir, args.workers)
    return code


def run_command(name: str, argv: list[str]) -> int:
    """``storefront-sim NAME ARGS``: the command's module is imported only now."""
    import importlib

    module, _, function = COMMANDS[name][0].partition(":")
    return int(getattr(importlib.import_module(module), function or "main")(argv))


def _validated(args: argparse.Namespace) -> tuple[Scenario, dt.date]:
    """The scenario with the flags applied, once every flag and the output dir are usable."""
    if not args.scenario:
        raise _refuse("a scenario file is required (e.g. scenarios/baseline.yaml)")
    try:
        scenario, today = load_from_args(args)
    except ScenarioError as exc:
        raise _refuse(str(exc)) from None
    problem = _flag_problem(args, scenario) or _output_problem(args, scenario)
    if problem:
        raise _refuse(problem)
    return scenario, today


def _flag_problem(args: argparse.Namespace, scenario: Scenario) -> str | None:
    """What is wrong with the run's flags (workers, live mode), if anything."""
    if args.workers is not None and args.workers < 1:
        return f"{args.scenario}: --workers: must be at least 1"
    for flag in ("speed", "bucket"):
        if not getattr(args, flag) > 0:
            return f"{args.scenario}: --{flag}: must be greater than 0"
    if not args.live and (args.speed != 1.0 or args.bucket != 1.0 or args.control):
        return f"{args.scenario}: --speed, --bucket and --control need --live"
    if args.no_files and scenario.output.traces.enabled:
        return (f"{args.scenario}: --trace-sample (output.traces): traces are streamed from the "
                "run's trace files; drop --no-files")
    if args.live and scenario.output.traces.enabled:
        return (f"{args.scenario}: --trace-sample (output.traces): traces are written by "
                "batch runs; drop it with --live")
    if args.live and args.distractors_per_day:
        return (f"{args.scenario}: --distractors-per-day: a live run draws no distractors yet "
                "(a scenario's distractors.per_day is left out of a live run)")
    if args.live and scenario.output.gzip:
        return (f"{args.scenario}: --gzip (output.gzip): a live run's NDJSON is tailed while "
                "it grows, so it is written plain; drop --gzip with --live")
    return None


def _output_problem(args: argparse.Namespace, scenario: Scenario) -> str | None:
    """What keeps the run from writing where it is told to, if anything (before any setup:
    a refused run changes nothing, not even an index's settings)."""
    if not args.no_files:
        unusable = check_output_dir(Path(scenario.output.dir))
        if unusable:
            return unusable
    if _opensearch_url(args):
        if args.data_stream and args.index:
            return f"{args.scenario}: --data-stream and --index: give one of them"
    elif args.no_files:
        return "--no-files needs --opensearch URL (or OPENSEARCH_URL): nothing would be written"
    if args.report and args.no_files:
        return "--report needs the run's files: it cannot go with --no-files"
    return None


def _opensearch_url(args: argparse.Namespace) -> str | None:
    return args.opensearch or os.environ.get("OPENSEARCH_URL")


def _set_up_outputs(args: argparse.Namespace, scenario: Scenario) -> _Outputs:
    """The NDJSON dir, the worker count and, when streaming, the OpenSearch sinks."""
    url = _opensearch_url(args)
    workers = args.workers
    if workers is None and url and _on_this_machine(url):
        workers = LOCAL_NODE_WORKERS
    outputs = _Outputs(None if args.no_files else Path(scenario.output.dir), workers,
                       args.dask or os.environ.get("DASK_SCHEDULER_ADDRESS") or None)
    if url:
        _stream_to_opensearch(args, scenario, url, outputs)
    return outputs


def _stream_to_opensearch(args: argparse.Namespace, scenario: Scenario, url: str,
                          outputs: _Outputs) -> None:
    """Connect, ready the index (or data stream) and the incidents index, add the sinks."""
    from sim.outputs.opensearch import OpenSearchSetupError, scrub_url
    from sim.outputs.setup import alert_sinks, enter_bulk_load, prepare_opensearch, run_sinks

    index = args.data_stream or args.index or scenario.output.index
    incidents_index = scenario.output.incidents_index
    try:
        client = prepare_opensearch(url, index, incidents_index, data_stream=bool(args.data_stream),
                                    ca_certs=args.ca_certs, insecure=args.insecure)
        outputs.alert_sinks = alert_sinks(client, scenario.output.alerts_index,
                                          Path(scenario.output.dir),
                                          give_up_after=LIVE_GIVE_UP_S if args.live else None)
    except OpenSearchSetupError as exc:
        raise _refuse(str(exc)) from None
    if not args.live:  # a live run ends the bulk-load settings itself, at the handoff
        refused = enter_bulk_load(outputs.load_settings, client, index)
        if refused:
            print(f"error: {refused}", file=sys.stderr)
            raise _Exit(EXIT_FAILED)
    if outputs.dask:  # the Dask workers stream their segments themselves (credentials: their env)
        from sim.run.parallel import StreamTarget

        outputs.stream = StreamTarget(scrub_url(url), index, args.ca_certs, args.insecure)
    # live: while OpenSearch is away the run waits (back-pressure) rather than give up
    outputs.extra_sinks, outputs.incident_sinks = run_sinks(
        client, index, incidents_index, Path(scenario.output.dir), documents=not outputs.dask,
        give_up_after=LIVE_GIVE_UP_S if args.live else None)
    if outputs.extra_sinks:
        outputs.bulk_index = (client, index)
    if scenario.output.traces.enabled:
        from sim.outputs.trace_indices import ensure_trace_indices, trace_sinks

        try:
            ensure_trace_indices(client)
        except OpenSearchSetupError as exc:
            raise _refuse(str(exc)) from None
        outputs.trace_sinks = trace_sinks(client, index, Path(scenario.output.dir), None)


def _progress_bar(args: argparse.Namespace, scenario: Scenario,
                  today: dt.date) -> tuple[Any, Callable[[float], None] | None]:
    """The tqdm bar in simulated hours (warm-ups included) and what advances it; none
    with --quiet."""
    if args.quiet:
        return None, None
    from tqdm import tqdm

    window = resolve_run_window(scenario, today)
    segments = len(window.segments())
    total_h = (window.seconds + segments * scenario.window.warmup_minutes * 60.0) / 3600.0
    bar = tqdm(total=round(total_h, 2), unit="sim-h", file=sys.stderr, disable=None,
               bar_format="{l_bar}{bar}| {n:.1f}/{total:.1f} sim-h [{elapsed}<{remaining}]")

    def progress(seconds: float) -> None:
        bar.update(seconds / 3600.0)

    return bar, progress


@contextlib.contextmanager
def _sigterm_as_ctrl_c() -> Iterator[None]:
    """SIGTERM like Ctrl-C while the run lasts: every exit path cleans up."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.signal(signal.SIGTERM, _interrupt)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def _execute(args: argparse.Namespace, scenario: Scenario, today: dt.date,
             outputs: _Outputs) -> RunResult:
    """Run live or batch; a run that fails ends the command with its one line."""
    from sim.run.parallel import SegmentError
    from sim.run.workspace import RunDirError

    bar, progress = _progress_bar(args, scenario, today)
    try:
        with _sigterm_as_ctrl_c():
            if args.live:
                return _run_live(args, scenario, today, outputs, progress, bar)
            _future_notice(scenario, today)
            with outputs.load_settings:
                return simulate(scenario, today, outputs.output_dir, outputs.extra_sinks,
                                progress=progress, workers=outputs.workers,
                                incident_sinks=outputs.incident_sinks, engine=args.engine,
                                run_dir=Path(scenario.output.dir), resume=args.resume,
                                dask=outputs.dask, stream=outputs.stream,
                                alert_sinks=outputs.alert_sinks,
                                trace_sinks=outputs.trace_sinks)
    except RunDirError as exc:
        raise _refuse(str(exc)) from None
    except (SegmentError, OutputError, KeyboardInterrupt) as exc:
        raise _Exit(_failed(exc)) from None
    finally:
        if bar is not None:
            bar.close()


def _run_live(args: argparse.Namespace, scenario: Scenario, today: dt.date, outputs: _Outputs,
              progress: Callable[[float], None] | None, bar: Any) -> RunResult:
    from sim.live.loop import LiveWindowError, live_from_args

    try:
        return live_from_args(args, scenario, today, outputs.output_dir, outputs.extra_sinks,
                              outputs.incident_sinks, progress, bar, outputs.bulk_index,
                              outputs.alert_sinks)
    except LiveWindowError as exc:
        raise _refuse(f"{args.scenario}: --live: {exc}") from None


def _failed(exc: BaseException) -> int:
    """The one line for a run that failed (or was interrupted) part way; its exit code."""
    if isinstance(exc, KeyboardInterrupt):
        print("error: interrupted; no complete-looking output was left behind", file=sys.stderr)
        return 130
    print(f"error: {one_line(str(exc)) if isinstance(exc, OutputError) else exc}", file=sys.stderr)
    return EXIT_FAILED


def _write_report(output_dir: Path, workers: int | None) -> int:
    """``--report``: the run's report, after a run that succeeded."""
    from sim.report import build_report
    from sim.report.aggregate import ReportInputError

    try:
        print(f"report: {build_report(output_dir, workers)}", file=sys.stderr)
    except ReportInputError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_FAILED
    return 0


def _print_next_commands(args: argparse.Namespace, scenario: Scenario, outputs: _Outputs,
                         stream: Any = None) -> None:
    """What to do with the run's output next, with its real paths: the report, and loading
    the NDJSON into OpenSearch (unless the run streamed it there already)."""
    import shlex

    from sim.outputs.mapping import MAPPING_PATH

    stream = stream or sys.stderr
    out = outputs.output_dir
    index = args.data_stream or args.index or scenario.output.index
    lines = []
    if out is not None and not args.report:
        lines.append(f"storefront-sim report {shlex.quote(str(out))}")
    if outputs.bulk_index is not None or outputs.stream is not None:
        lines.append(f"(the documents are in OpenSearch already: {index})")
    elif out is not None:
        index = f"localhost:9200/{index}"
        gz = ".gz" if scenario.output.gzip else ""
        lines += [f'curl -X PUT "{index}" -H "Content-Type: application/json" '
                  f"-d @{shlex.quote(str(MAPPING_PATH))}",
                  f'curl -X POST "{index}/_bulk" -H "Content-Type: application/x-ndjson" '
                  + ('-H "Content-Encoding: gzip" ' if gz else "")
                  + f"--data-binary @{shlex.quote(str(out / f'all_data.ndjson{gz}'))}",
                  "(or stream into OpenSearch while simulating: --opensearch URL)"]
    if lines:
        print("next:", file=stream)
        for line in lines:
            print(f"  {line}", file=stream)


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
