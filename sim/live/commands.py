"""``storefront-sim inject | faults | clear``: edit and show a live run's control file.

Edits hold a lock (``.control.yaml.lock`` beside the file) across read, change and write, so
two commands at once both land, and replace the file atomically (sim/live/control.py
``write_atomic``), so the polling simulation never reads half a file. The file is rewritten
from its parsed content: comments are not kept. Every entry gets its ``id`` written out, so
removing one never renumbers another's derived id.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import fcntl
import os
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any, get_args

import yaml
from pydantic import ValidationError

from sim.config import ControlFault, FaultType, ScenarioError, parse_yaml
from sim.console import OneLineParser, bad_input, program_name
from sim.core.clock import now_offset, parse_duration, resolve_time_expression
from sim.live.control import (
    default_control_path,
    read_control,
    read_state,
    state_path,
    write_atomic,
)
from sim.model.faults import active_fault

FAULT_TYPES: tuple[str, ...] = get_args(FaultType)
# an inject flag -> the control-file field it sets (errors name the flag)
FLAG_OF = {"type": "TYPE", "start": "--start", "duration_minutes": "--for",
           "ramp_minutes": "--ramp", "magnitude": "--magnitude", "target": "--target", "id": "--id"}


def _add_file_flags(p: argparse.ArgumentParser) -> None:
    where = p.add_mutually_exclusive_group()
    where.add_argument("--control", metavar="FILE",
                       help="the live run's control file (default OUTPUT_DIR/control.yaml)")
    where.add_argument("--output-dir", metavar="DIR", default="./output",
                       help="the live run's output directory (default ./output)")


def _control_path(args: argparse.Namespace) -> Path:
    return Path(args.control) if args.control else default_control_path(args.output_dir)


@contextlib.contextmanager
def _locked(path: Path) -> Iterator[None]:
    """Serialise the commands' read-change-write on one control file."""
    lock = path.with_name(f".{path.name}.lock")
    fd = os.open(lock, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)


def _load(path: Path) -> dict[str, Any]:
    """The file's mapping with every entry's id written out ({"faults": []} when absent)."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return {"faults": []}
    except (OSError, UnicodeDecodeError) as exc:
        raise ScenarioError(f"{path}: cannot read: {getattr(exc, 'strerror', None) or exc}") from None
    entries = read_control(path, text, _instances(path))
    raw = parse_yaml(text, path) or {}
    raw["faults"] = [{"id": key, **{k: v for k, v in entry.items() if k != "id"}}
                     for (key, _), entry in zip(entries, raw.get("faults") or [], strict=True)]
    return raw


def _instances(path: Path) -> int | None:
    """The running storefront's instance count, from its state file (None: no run yet)."""
    state = read_state(state_path(path))
    n = state.get("instances") if state else None
    return n if isinstance(n, int) else None


def _save(path: Path, raw: dict[str, Any]) -> None:
    # never write a file the run would reject
    read_control(path, yaml.safe_dump(raw, sort_keys=False), _instances(path))
    header = "# storefront-sim control file: runtime faults of a live run (README: Runtime faults)\n"
    write_atomic(path, header + yaml.safe_dump(raw, sort_keys=False, default_flow_style=False))


def _minutes(flag: str, text: str) -> float | int:
    try:
        minutes = parse_duration(text) / 60.0
    except ValueError as exc:
        raise ScenarioError(f"inject {flag}: {exc}") from None
    return int(minutes) if minutes == int(minutes) else minutes


def _new_entry(args: argparse.Namespace) -> dict[str, Any]:
    if args.type not in FAULT_TYPES:
        raise ScenarioError(f"inject TYPE: unknown fault type {args.type!r} "
                            f"(one of: {', '.join(FAULT_TYPES)})")
    entry: dict[str, Any] = {"type": args.type, "start": args.start}
    if args.duration is not None:
        entry["duration_minutes"] = _minutes("--for", args.duration)
    if args.ramp is not None:
        entry["ramp_minutes"] = _minutes("--ramp", args.ramp)
    for key in ("magnitude", "target"):
        if getattr(args, key) is not None:
            entry[key] = getattr(args, key)
    try:
        ControlFault.model_validate({**entry, "id": args.id})
    except ValidationError as exc:
        err = exc.errors()[0]
        field = str(err["loc"][0]) if err["loc"] else "type"
        msg = str(err["msg"]).removeprefix("Value error, ")
        raise ScenarioError(f"inject {FLAG_OF.get(field, field)}: {msg}") from None
    if now_offset(args.start) is None:
        try:
            resolve_time_expression(args.start, dt.date(2000, 1, 3))
        except ValueError as exc:
            raise ScenarioError(f"inject --start: {exc} or 'now', 'now+5m'") from None
    return entry


def inject(argv: list[str]) -> int:
    p = OneLineParser(prog=f"{program_name()} inject",
                description="Add a fault to a live run's control file; it starts at the "
                            "simulation's next bucket boundary (or at --start).")
    p.add_argument("type", metavar="TYPE", help=f"one of: {', '.join(FAULT_TYPES)}")
    p.add_argument("--for", dest="duration", metavar="DURATION",
                   help="how long, e.g. 90s, 10m, 1h (default 10m)")
    p.add_argument("--start", default="now",
                   help="now (default), now+5m, 'today 14:25' or an ISO datetime (UTC)")
    p.add_argument("--magnitude", type=float, help="in the fault type's unit (README)")
    p.add_argument("--target", help="app-NN (memory_leak) or inventory|recommendations")
    p.add_argument("--ramp", metavar="DURATION", help="ramp-up time (default 2m)")
    p.add_argument("--id", help="the id to clear it by (default TYPE-N)")
    _add_file_flags(p)
    args = p.parse_args(argv)
    path = _control_path(args)
    try:
        entry = _new_entry(args)
        path.parent.mkdir(parents=True, exist_ok=True)
        with _locked(path):
            raw = _load(path)
            used = {e["id"] for e in raw["faults"]}
            if args.id is not None and args.id in used:
                raise ScenarioError(f"{path}: inject --id: id {args.id!r} is already in the file "
                                    "(clear it first, or choose another)")
            fault_id = args.id or _next_id(args.type, used | _ids_in_state(path))
            raw["faults"].append({"id": fault_id, **entry})
            _save(path, raw)
    except ScenarioError as exc:
        return bad_input(str(exc))
    except OSError as exc:
        return bad_input(f"{path}: cannot write: {exc.strerror or exc}")
    duration = entry.get("duration_minutes", ControlFault.model_fields["duration_minutes"].default)
    print(f"{path}: injected {fault_id} ({args.type}, start {args.start}, {duration:g} min)")
    return 0


def _next_id(fault_type: str, used: set[str]) -> str:
    n = 1
    while f"{fault_type}-{n}" in used:
        n += 1
    return f"{fault_type}-{n}"


def _ids_in_state(path: Path) -> set[str]:
    """Ids the running simulation has seen (a removed fault's id is not handed out again)."""
    state = read_state(state_path(path)) or {}
    return {str(f.get("id")) for f in state.get("faults", []) if f.get("origin") == "control"}


def clear(argv: list[str]) -> int:
    p = OneLineParser(prog=f"{program_name()} clear",
                description="End a runtime fault: remove it from the control file; the "
                            "simulation ends it at its next bucket boundary.")
    p.add_argument("id", metavar="ID", help="as listed by storefront-sim faults")
    _add_file_flags(p)
    args = p.parse_args(argv)
    path = _control_path(args)
    try:
        with contextlib.ExitStack() as stack:
            if path.parent.is_dir():
                stack.enter_context(_locked(path))
            raw = _load(path)
            ids = [e["id"] for e in raw["faults"]]
            if args.id not in ids:
                raise ScenarioError(f"{path}: clear: unknown fault id {args.id!r} "
                                    f"(known: {', '.join(ids) or 'none'})")
            raw["faults"] = [e for e in raw["faults"] if e["id"] != args.id]
            _save(path, raw)
    except ScenarioError as exc:
        return bad_input(str(exc))
    except OSError as exc:
        return bad_input(f"{path}: cannot write: {exc.strerror or exc}")
    print(f"{path}: cleared {args.id}")
    return 0


def faults(argv: list[str]) -> int:
    p = OneLineParser(prog=f"{program_name()} faults",
                description="List the control file's faults and, from the running simulation's "
                            "state file, what it has applied (simulated start and end).")
    _add_file_flags(p)
    args = p.parse_args(argv)
    path = _control_path(args)
    problem = None
    try:
        entries = read_control(path, path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        entries = []
    except (OSError, UnicodeDecodeError) as exc:
        entries, problem = [], f"{path}: cannot read: {getattr(exc, 'strerror', None) or exc}"
    except ScenarioError as exc:
        entries, problem = [], str(exc)
    state_file = state_path(path)
    state = read_state(state_file)
    applied = {f["id"]: f for f in (state or {}).get("faults", [])
               if f.get("origin") == "control" and f.get("in_file")}
    in_file = {key for key, _ in entries}
    rows = []
    for key, spec in entries:
        f = applied.pop(key, None)
        if f is None:  # not read by a simulation yet: as the file says, with the defaults
            d = active_fault(spec, key, 0.0)
            rows.append((key, "pending", spec.type, spec.start,
                         f"+{spec.duration_minutes:g} min", d.magnitude, d.target, "control"))
        else:
            rows.append(_state_row(f, ""))
    for f in (state or {}).get("faults", []):
        if f.get("origin") != "control":
            rows.append(_state_row(f, ""))
        elif f["id"] not in in_file:  # cleared: the simulation has ended it, or will next bucket
            rows.append(_state_row(f, " (cleared)" if not f.get("in_file") else " (clearing)"))
    written = ""
    if state is None:
        print(f"control file {path}; no running simulation has written {state_file.name}")
    else:
        with contextlib.suppress(OSError):
            written = f" (state written {_ago(time.time() - state_file.stat().st_mtime)} ago)"
        print(f"control file {path}; simulation at {state['simulated_now']}{written}")
        if state.get("control_error"):
            print(f"the simulation ignores the file's last edit: {state['control_error']}")
    if rows:
        header = ("ID", "STATUS", "TYPE", "START", "END", "MAGNITUDE", "TARGET", "ORIGIN")
        table = [header, *[tuple("-" if v is None else f"{v:g}" if isinstance(v, float) else str(v)
                                 for v in row) for row in rows]]
        widths = [max(len(r[i]) for r in table) for i in range(len(header))]
        for r in table:
            print("  ".join(v.ljust(w) for v, w in zip(r, widths, strict=True)).rstrip())
    elif problem is None:
        print("no runtime faults (add one: storefront-sim inject TYPE --for 10m)")
    if problem is not None:
        return bad_input(problem)
    return 0


def _state_row(f: dict[str, Any], note: str) -> tuple[Any, ...]:
    return (f["id"], f["status"] + note, f["type"], f["start"], f["end"], f["magnitude"],
            f["target"], f["origin"])


def _ago(seconds: float) -> str:
    return str(dt.timedelta(seconds=round(max(0.0, seconds))))
