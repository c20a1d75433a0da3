"""``storefront-sim inject | change | faults | clear``: edit and show a live run's control file.

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
import re
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any, get_args

import yaml
from pydantic import ValidationError

from sim.config import (
    CHANGE_FIELDS,
    ChangeConfig,
    ChangeKind,
    ControlFault,
    FaultType,
    ScenarioError,
    StorefrontConfig,
    check_change_list,
    parse_yaml,
)
from sim.console import OneLineParser, bad_input, program_name
from sim.core.clock import now_offset, parse_duration, resolve_time_expression
from sim.live.control import (
    default_control_path,
    read_entries,
    read_state,
    state_path,
    write_atomic,
)
from sim.model.faults import active_fault

FAULT_TYPES: tuple[str, ...] = get_args(FaultType)
CHANGE_KINDS: tuple[str, ...] = get_args(ChangeKind)
# a change flag -> the control-file field it sets (errors name the flag)
CHANGE_FLAG_OF = {"kind": "KIND", "at": "--at", "id": "--id", "message": "--message",
                  "settings": "--set", "hosts": "--hosts", "version": "--version",
                  "pause_seconds": "--pause", "fault": "--leak-mb", "flag": "--flag",
                  "enabled": "--off", "share": "--share"}
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
    """The file's mapping with every entry's id written out ({"faults": []} when absent;
    ``changes`` only when the file has them)."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return {"faults": []}
    except (OSError, UnicodeDecodeError) as exc:
        raise ScenarioError(f"{path}: cannot read: {getattr(exc, 'strerror', None) or exc}") from None
    entries, changes = read_entries(path, text, _instances(path))
    raw = parse_yaml(text, path) or {}
    for name, keyed in (("faults", entries), ("changes", changes)):
        if name in raw or name == "faults":
            raw[name] = [{"id": key, **{k: v for k, v in entry.items() if k != "id"}}
                         for (key, _), entry in zip(keyed, raw.get(name) or [], strict=True)]
    return raw


def _instances(path: Path) -> int | None:
    """The running storefront's instance count, from its state file (None: no run yet)."""
    state = read_state(state_path(path))
    n = state.get("instances") if state else None
    return n if isinstance(n, int) else None


def _save(path: Path, raw: dict[str, Any]) -> None:
    # never write a file the run would reject
    read_entries(path, yaml.safe_dump(raw, sort_keys=False), _instances(path))
    header = ("# storefront-sim control file: runtime faults and changes of a live run "
              "(README: Runtime faults)\n")
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


def _change_entry(args: argparse.Namespace) -> dict[str, Any]:
    """The control-file entry the ``change`` flags describe, checked as the run will check it
    (any problem: one line naming the flag)."""
    if args.kind not in CHANGE_KINDS:
        raise ScenarioError(f"change KIND: unknown kind {args.kind!r} (one of: {', '.join(CHANGE_KINDS)})")
    entry: dict[str, Any] = {"kind": args.kind, "at": args.at}
    if args.set:
        entry["settings"] = dict(_setting(text) for text in args.set)
    if args.hosts is not None:
        entry["hosts"] = [h.strip() for h in args.hosts.split(",")]
    if args.pause is not None:
        entry["pause_seconds"] = _seconds("--pause", args.pause)
    if args.leak_mb is not None:
        entry["fault"] = {"type": "memory_leak", "magnitude": args.leak_mb}
    if args.off:
        entry["enabled"] = False
    for key in ("version", "flag", "share", "message"):
        if getattr(args, key) is not None:
            entry[key] = getattr(args, key)
    allowed = CHANGE_FIELDS[args.kind]
    for key in entry:
        if key not in allowed and key not in ("kind", "at", "message"):
            takes = ", ".join(CHANGE_FLAG_OF[f] for f in allowed if f in CHANGE_FLAG_OF)
            raise ScenarioError(f"change {CHANGE_FLAG_OF[key]}: not for a {args.kind} (it takes: {takes})")
    try:
        spec = ChangeConfig.model_validate({**entry, "id": args.id})
    except ValidationError as exc:
        err = exc.errors()[0]
        field = str(err["loc"][0]) if err["loc"] else "kind"
        msg = str(err["msg"]).removeprefix("Value error, ")
        raise ScenarioError(f"change {CHANGE_FLAG_OF.get(field, field)}: {msg}") from None
    try:
        check_change_list([spec], StorefrontConfig(instances=args.instances or 99), "change",
                          live=True)
    except ScenarioError as exc:
        m = re.match(r"change: changes\[0\]\.(\w+)\.?([^:]*): (.*)", str(exc))
        if m is None:
            raise
        flag = CHANGE_FLAG_OF.get(m.group(1), m.group(1))
        raise ScenarioError(f"change {flag}{' ' + m.group(2) if m.group(2) else ''}: {m.group(3)}") from None
    return entry


def _setting(text: str) -> tuple[str, Any]:
    """``db_pool.max_size=3`` -> ("db_pool.max_size", 3): the value is read as YAML."""
    path, sep, value = text.partition("=")
    if not sep or not path.strip():
        raise ScenarioError(f"change --set: expected PATH=VALUE (e.g. db_pool.max_size=3), got {text!r}")
    try:
        return path.strip(), yaml.safe_load(value) if value.strip() else value
    except yaml.YAMLError:
        return path.strip(), value


def _seconds(flag: str, text: str) -> float | int:
    try:
        seconds = parse_duration(text)
    except ValueError as exc:
        raise ScenarioError(f"change {flag}: {exc}") from None
    return int(seconds) if seconds == int(seconds) else seconds


def change(argv: list[str]) -> int:
    p = OneLineParser(prog=f"{program_name()} change",
                description="Add a change to a live run's control file: a config push, a deploy "
                            "or a feature flag. It is made at the simulation's next bucket "
                            "boundary (or at --at); once made, removing it does not undo it.")
    p.add_argument("kind", metavar="KIND", help=f"one of: {', '.join(CHANGE_KINDS)}")
    p.add_argument("--set", action="append", metavar="PATH=VALUE",
                   help="config_push: a storefront setting, e.g. db_pool.max_size=3 (repeatable)")
    p.add_argument("--hosts", help="config_push, deploy: app-01,app-02 (default: every instance)")
    p.add_argument("--version", help="deploy: the build rolled out, e.g. 2.14.0")
    p.add_argument("--pause", metavar="DURATION", help="deploy: between hosts (default 60s)")
    p.add_argument("--leak-mb", type=float, help="deploy: the build leaks this many MB per "
                                                  "call of its leaky path (a memory_leak bug)")
    p.add_argument("--flag", help="feature_flag: its name")
    p.add_argument("--off", action="store_true", help="feature_flag: switch it off")
    p.add_argument("--share", type=float, help="feature_flag: share of shoppers served it (default 1)")
    p.add_argument("--at", default="now",
                   help="now (default), now+5m, 'today 14:25' or an ISO datetime (UTC)")
    p.add_argument("--id", help="its id (default KIND-N)")
    p.add_argument("--message", help="what the tool that made it logs with it")
    _add_file_flags(p)
    args = p.parse_args(argv)
    path = _control_path(args)
    try:
        args.instances = _instances(path)
        entry = _change_entry(args)
        path.parent.mkdir(parents=True, exist_ok=True)
        with _locked(path):
            raw = _load(path)
            changes = raw.setdefault("changes", [])
            used = {e["id"] for e in changes}
            if args.id is not None and args.id in used:
                raise ScenarioError(f"{path}: change --id: id {args.id!r} is already in the file "
                                    "(choose another)")
            change_id = args.id or _next_id(args.kind, used | _ids_in_state(path, "changes"))
            changes.append({"id": change_id, **entry})
            _save(path, raw)
    except ScenarioError as exc:
        return bad_input(str(exc))
    except OSError as exc:
        return bad_input(f"{path}: cannot write: {exc.strerror or exc}")
    print(f"{path}: change {change_id} ({args.kind}, at {args.at})")
    return 0


def _next_id(fault_type: str, used: set[str]) -> str:
    n = 1
    while f"{fault_type}-{n}" in used:
        n += 1
    return f"{fault_type}-{n}"


def _ids_in_state(path: Path, what: str = "faults") -> set[str]:
    """Ids the running simulation has seen (a removed fault's or change's id is not handed
    out again)."""
    state = read_state(state_path(path)) or {}
    return {str(f.get("id")) for f in state.get(what, []) if f.get("origin", "control") == "control"}


def clear(argv: list[str]) -> int:
    p = OneLineParser(prog=f"{program_name()} clear",
                description="End a runtime fault: remove it from the control file; the "
                            "simulation ends it at its next bucket boundary. A change not yet "
                            "made is dropped; one already made stays made.")
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
            change_ids = [e["id"] for e in raw.get("changes", [])]
            if args.id not in ids and args.id not in change_ids:
                raise ScenarioError(f"{path}: clear: unknown fault id {args.id!r} "
                                    f"(known: {', '.join(ids + change_ids) or 'none'})")
            what = "faults" if args.id in ids else "changes"
            raw[what] = [e for e in raw[what] if e["id"] != args.id]
            _save(path, raw)
    except ScenarioError as exc:
        return bad_input(str(exc))
    except OSError as exc:
        return bad_input(f"{path}: cannot write: {exc.strerror or exc}")
    made = what == "changes" and args.id in _made_in_state(path)
    print(f"{path}: cleared {args.id}" + (" (a change already made: removing it does not undo it; "
                                          "make a new change to revert it)" if made else ""))
    return 0


def _made_in_state(path: Path) -> set[str]:
    state = read_state(state_path(path)) or {}
    return {str(c.get("id")) for c in state.get("changes", []) if c.get("status") == "made"}


def faults(argv: list[str]) -> int:
    p = OneLineParser(prog=f"{program_name()} faults",
                description="List the control file's faults and changes and, from the running "
                            "simulation's state file, what it has applied (simulated times).")
    _add_file_flags(p)
    args = p.parse_args(argv)
    path = _control_path(args)
    problem = None
    try:
        entries, changes = read_entries(path, path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        entries, changes = [], []
    except (OSError, UnicodeDecodeError) as exc:
        entries, changes = [], []
        problem = f"{path}: cannot read: {getattr(exc, 'strerror', None) or exc}"
    except ScenarioError as exc:
        entries, changes, problem = [], [], str(exc)
    state_file = state_path(path)
    state = read_state(state_file)
    rows = _fault_rows(entries, state)
    change_rows = _change_rows(changes, state)
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
        _print_table(("ID", "STATUS", "TYPE", "START", "END", "MAGNITUDE", "TARGET", "ORIGIN"), rows)
    elif problem is None and not change_rows:
        print("no runtime faults or changes (add one: storefront-sim inject TYPE --for 10m, "
              "storefront-sim change KIND ...)")
    if change_rows:
        print("changes:")
        _print_table(("ID", "STATUS", "KIND", "AT", "HOSTS", "WHAT", "NOTE"), change_rows)
    if problem is not None:
        return bad_input(problem)
    return 0


def _fault_rows(entries: list[tuple[str, ControlFault]], state: dict[str, Any] | None
                ) -> list[tuple[Any, ...]]:
    """The control file's faults (as applied, when the simulation has read them), then the
    scenario's and random ones the simulation runs, then cleared ones."""
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
    return rows


def _change_rows(entries: list[tuple[str, ChangeConfig]], state: dict[str, Any] | None
                 ) -> list[tuple[Any, ...]]:
    """The control file's changes (pending until the simulation reads them), then the made
    ones no longer in the file (a change is not undone by removing it)."""
    applied = {c["id"]: c for c in (state or {}).get("changes", [])}
    rows = []
    for key, spec in entries:
        c = applied.pop(key, None)
        if c is None or not c.get("in_file"):
            hosts = ",".join(spec.hosts) if spec.hosts else "-"
            rows.append((key, "pending", spec.kind, spec.at, hosts, _spec_summary(spec), None))
    rows += [(c["id"], c["status"], c["kind"], c["at"], ",".join(c["hosts"]) or "-", c["what"],
              c.get("note")) for c in (state or {}).get("changes", [])
             if c["id"] not in {r[0] for r in rows}]
    return rows


def _spec_summary(spec: ChangeConfig) -> str:
    if spec.kind == "deploy":
        return f"version {spec.version}"
    if spec.kind == "feature_flag":
        return f"{spec.flag} {f'{spec.share * 100:g}%' if spec.enabled else 'off'}"
    return ", ".join(f"{k}={v}" for k, v in (spec.settings or {}).items())


def _print_table(header: tuple[str, ...], rows: list[tuple[Any, ...]]) -> None:
    table = [header, *[tuple("-" if v is None else f"{v:g}" if isinstance(v, float) else str(v)
                             for v in row) for row in rows]]
    widths = [max(len(r[i]) for r in table) for i in range(len(header))]
    for r in table:
        print("  ".join(v.ljust(w) for v, w in zip(r, widths, strict=True)).rstrip())


def _state_row(f: dict[str, Any], note: str) -> tuple[Any, ...]:
    return (f["id"], f["status"] + note, f["type"], f["start"], f["end"], f["magnitude"],
            f["target"], f["origin"])


def _ago(seconds: float) -> str:
    return str(dt.timedelta(seconds=round(max(0.0, seconds))))
