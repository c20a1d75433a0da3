"""Runtime faults and changes for a live run: the control file it polls and the state file it
writes back.

The control file (``--control FILE``, default ``OUTPUT_DIR/control.yaml``) holds ``faults:``
with the scenario's fault schema (sim/config.py: ``ControlFault``) plus an optional ``id``
and the start forms "now" / "now+5m", and ``changes:`` with the scenario's change schema
(``ChangeConfig``; ``at`` may be "now" / "now+5m" too). A live run polls it at every bucket
boundary (``ControlFile.poll``); what it has applied goes to ``control.state.json`` beside it
(``ControlFile.write_state``), which ``storefront-sim faults`` shows. The commands that edit
the file are in sim/live/commands.py.

Simulated time only moves forward, so an edit can change the future, never the past: a new
fault starts at the boundary where it is first read (or later), a removed or shortened one
ends there at the earliest, and one that has ended stays ended. A change is made at the
boundary where it is first read (or at its later ``at``); until then it may be edited or
removed, and once made it stays made: removing it from the file does not undo it (a new
change does).
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime as dt
import hashlib
import json
import os
import tempfile
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import BaseModel

from sim.config import (
    ChangeConfig,
    ControlFault,
    Scenario,
    ScenarioError,
    StorefrontConfig,
    check_change_list,
    check_fault_targets,
    parse_control,
    parse_yaml,
)
from sim.core.clock import now_offset, resolve_time_expression
from sim.model.changes import ActiveChange, active_change, change_summary
from sim.model.faults import ActiveFault, active_fault

CONTROL_FILE = "control.yaml"
STATE_VERSION = 1


def default_control_path(output_dir: str | Path) -> Path:
    return Path(output_dir) / CONTROL_FILE


def state_path(control_path: Path) -> Path:
    """``control.yaml`` -> ``control.state.json`` in the same directory."""
    return control_path.with_name(control_path.stem + ".state.json")


def fault_keys(faults: Sequence[ControlFault]) -> list[str]:
    """Each entry's id: its own ``id``, else ``TYPE-xxxxxx`` from a hash of its content
    without ``duration_minutes`` (so shortening a fault keeps its id), with ``-2``, ``-3``
    for the 2nd, 3rd identical entry (so removing another entry keeps it)."""
    return _keys([(f.type, f) for f in faults], {"id", "duration_minutes"})


def change_keys(changes: Sequence[ChangeConfig]) -> list[str]:
    """``fault_keys`` for changes: ``KIND-xxxxxx`` from a hash of the whole entry."""
    return _keys([(c.kind, c) for c in changes], {"id"})


def _keys(entries: Sequence[tuple[str, BaseModel]], exclude: set[str]) -> list[str]:
    seen: dict[str, int] = {}
    keys = []
    for name, entry in entries:
        own = getattr(entry, "id", None)
        if own is not None:
            keys.append(own)
            continue
        content = json.dumps(entry.model_dump(exclude=exclude), sort_keys=True)
        base = f"{name}-{hashlib.blake2b(content.encode(), digest_size=3).hexdigest()}"
        seen[base] = seen.get(base, 0) + 1
        keys.append(base if seen[base] == 1 else f"{base}-{seen[base]}")
    return keys


def _unique(path: Path, field: str, keys: list[str]) -> None:
    first: dict[str, int] = {}
    for i, key in enumerate(keys):
        if key in first:
            raise ScenarioError(f"{path}: {field}[{i}].id: duplicate id {key!r} "
                                f"(also {field}[{first[key]}])")
        first[key] = i


def read_control(path: Path, text: str, instances: int | None = None
                 ) -> list[tuple[str, ControlFault]]:
    """A control file's faults with their ids (``read_entries``, the faults only)."""
    return read_entries(path, text, instances)[0]


def read_entries(path: Path, text: str, instances: int | None = None,
                 storefront: StorefrontConfig | None = None
                 ) -> tuple[list[tuple[str, ControlFault]], list[tuple[str, ChangeConfig]]]:
    """A control file's faults and changes with their ids; any problem is a one-line
    ScenarioError.

    ``instances``: the running storefront's size, to check targets and hosts against (from
    the scenario, or from the state file the run writes); None skips that check.
    ``storefront``: the running storefront's settings, which a change's are checked
    against (default: the scenario defaults with ``instances``)."""
    control = parse_control(parse_yaml(text, path), str(path))
    if instances is not None:
        check_fault_targets(control.faults, instances, str(path))
    if storefront is None:
        storefront = StorefrontConfig(instances=instances or 99)  # hosts unknown: any app-NN
    check_change_list(control.changes, storefront, str(path), live=True)
    keys = fault_keys(control.faults)
    _unique(path, "faults", keys)
    change_ids = change_keys(control.changes)
    _unique(path, "changes", change_ids)
    return (list(zip(keys, control.faults, strict=True)),
            list(zip(change_ids, control.changes, strict=True)))


def _same_except(a: ControlFault, b: ControlFault, *fields: str) -> bool:
    skip = {"id", *fields}  # an id written out later (by the commands) is the same fault
    return a.model_dump(exclude=skip) == b.model_dump(exclude=skip)


@dataclass(frozen=True)
class ControlUpdate:
    faults: tuple[ActiveFault, ...]   # all runtime faults (also ended ones), stable fault_ids
    changed: bool                     # differs from the previous poll's faults
    error: str | None                 # one line to log, previous state kept
    # every runtime change made or scheduled, in the order first read (a scheduled one may
    # still move or go; one whose epoch is before the poll's boundary is made for good)
    changes: tuple[ActiveChange, ...] = ()


@dataclass(frozen=True)
class _Record:
    """One runtime fault as applied: ``anchor`` is the start its file entry asks for."""

    key: str
    fault_id: str
    spec: ControlFault
    first_seen: float
    anchor: float
    start: float
    end: float

    def fault(self) -> ActiveFault:
        return dataclasses.replace(active_fault(self.spec, self.fault_id, self.start),
                                   end_epoch=self.end)


@dataclass(frozen=True)
class _ChangeRecord:
    """One runtime change: made once its ``epoch`` is before a poll's boundary; until then
    it may move (an edit) or be dropped (removed from the file: ``dropped``)."""

    key: str
    change_id: str
    spec: ChangeConfig
    first_seen: float
    epoch: float
    dropped: bool = False

    def made(self, boundary: float) -> bool:
        return not self.dropped and self.epoch < boundary


class ControlFile:
    """The control file as a running simulation sees it, one poll per bucket boundary.

    Runtime fault ids are ``{scenario}-live-{id}`` (``{scenario}-live2-{id}`` and so on when
    an id comes back after its fault was removed): never a scenario fault's
    ``{scenario}-fN`` nor a random incident's ``{scenario}-rYYYYMMDD-N``."""

    def __init__(self, path: Path, scenario: Scenario, today: dt.date) -> None:
        self.path = Path(path)
        self.scenario = scenario
        self.today = today
        self.error: str | None = None  # the file's current problem, while it lasts
        self._seen: tuple[str, ...] | None = None  # what the last poll read
        self._records: list[_Record] = []
        self._current: dict[str, int] = {}  # id in the file -> its record
        self._faults: tuple[ActiveFault, ...] = ()
        self._change_records: list[_ChangeRecord] = []
        self._change_current: dict[str, int] = {}
        self._changes: tuple[ActiveChange, ...] = ()

    def poll(self, boundary_epoch: float) -> ControlUpdate:
        """Re-reads the file if it changed (content hash). Returns every runtime fault known so
        far as ActiveFault (sim/model/faults.py) with absolute times: a fault first seen at this poll
        with start "now"/"now+5m" starts at boundary_epoch (+5 min); absolute/relative starts
        resolve as in a scenario (sim/model/faults.py active_fault, sim/core/clock.py); a fault removed
        from the file, or whose duration was shortened, ends at max(its start, boundary_epoch)
        (an ended fault never restarts; an ended fault's record stays in the list); an invalid
        file keeps the previous faults and sets error to one line; a missing file means no faults.

        Details: the file is read and hashed at every poll (a few hundred bytes; mtime alone
        misses two writes within its granularity). An absolute start already past when first
        read starts at the boundary and keeps its end; a fault removed before its start is
        listed with start == end. ``error`` is returned once per bad content (one log line per
        bad edit, not one per bucket). Changing anything but the duration of a fault that has
        started is an invalid edit (clear it and inject a new one); a scheduled fault takes
        any edit, its "now" still meaning when it was first read."""
        seen, text = self._read()
        if seen == self._seen:
            return ControlUpdate(self._faults, False, None, self._changes)
        self._seen = seen
        try:
            if seen[0] == "unreadable":
                raise ScenarioError(f"{self.path}: cannot read: {seen[1]}")
            sf = self.scenario.storefront
            entries, change_entries = ([], []) if text is None else read_entries(
                self.path, text, sf.instances, sf)
            records, current = self._apply(entries, boundary_epoch)
            change_records, change_current = self._apply_changes(change_entries, boundary_epoch)
        except ScenarioError as exc:
            self.error = str(exc)
            return ControlUpdate(self._faults, False, self.error, self._changes)
        self.error = None
        self._records, self._current = records, current
        self._change_records, self._change_current = change_records, change_current
        faults = tuple(r.fault() for r in records)
        changes = tuple(self._active(r) for r in change_records if not r.dropped)
        changed = faults != self._faults or changes != self._changes
        self._faults, self._changes = faults, changes
        return ControlUpdate(faults, changed, None, changes)

    def _active(self, rec: _ChangeRecord) -> ActiveChange:
        spec = rec.spec.model_copy(update={"id": None})  # its id is the run's, below
        return active_change(spec, rec.change_id, rec.epoch, self.scenario.storefront)

    def _apply_changes(self, entries: list[tuple[str, ChangeConfig]], b: float
                       ) -> tuple[list[_ChangeRecord], dict[str, int]]:
        """The change records after the file is read at boundary ``b``: a new entry is made
        at ``b`` or at its later ``at``; a scheduled one takes any edit, and is dropped when
        removed; a made one refuses edits and stays when removed (a change is not undone)."""
        records = list(self._change_records)
        current = dict(self._change_current)
        for i, (key, spec) in enumerate(entries):
            idx = current.get(key)
            if idx is None:
                generation = 1 + sum(r.key == key for r in records)
                prefix = "live" if generation == 1 else f"live{generation}"
                epoch = max(self._anchor_at(spec.at, b), b)
                records.append(_ChangeRecord(key, f"{self.scenario.name}-{prefix}-{key}", spec,
                                             b, epoch))
                current[key] = len(records) - 1
                continue
            rec = records[idx]
            same = rec.spec.model_dump(exclude={"id"}) == spec.model_dump(exclude={"id"})
            if same:
                continue
            if rec.made(b):
                raise ScenarioError(
                    f"{self.path}: changes[{i}]: change {key!r} was made at {iso(rec.epoch)}; "
                    "a change cannot be edited once made (add a new change to alter or revert it)")
            epoch = max(self._anchor_at(spec.at, rec.first_seen), b)
            records[idx] = dataclasses.replace(rec, spec=spec, epoch=epoch)
        present = {key for key, _ in entries}
        for key, idx in list(current.items()):
            if key not in present:
                if not records[idx].made(b):
                    records[idx] = dataclasses.replace(records[idx], dropped=True)
                del current[key]
        return records, current

    def _read(self) -> tuple[tuple[str, ...], str | None]:
        try:
            data = self.path.read_bytes()
        except FileNotFoundError:
            return ("missing",), None
        except OSError as exc:
            return ("unreadable", exc.strerror or str(exc)), None
        try:
            text = data.decode("utf-8")
        except UnicodeDecodeError:
            return ("unreadable", "not UTF-8 text"), None
        return ("text", hashlib.blake2b(data).hexdigest()), text

    def _anchor(self, spec: ControlFault, first_seen: float) -> float:
        return self._anchor_at(spec.start, first_seen)

    def _anchor_at(self, when: str, first_seen: float) -> float:
        offset = now_offset(when)
        if offset is not None:
            return first_seen + offset
        return resolve_time_expression(when, self.today).timestamp()

    def _apply(self, entries: list[tuple[str, ControlFault]],
               b: float) -> tuple[list[_Record], dict[str, int]]:
        """The records after the file's new content is read at boundary ``b`` (nothing is
        changed in place: an invalid edit leaves the previous state as it was)."""
        records = list(self._records)
        current = dict(self._current)
        for i, (key, spec) in enumerate(entries):
            idx = current.get(key)
            if idx is None:  # new, or back after it was removed: a new fault
                generation = 1 + sum(r.key == key for r in records)
                prefix = "live" if generation == 1 else f"live{generation}"
                anchor = self._anchor(spec, b)
                start = max(anchor, b)
                records.append(_Record(key, f"{self.scenario.name}-{prefix}-{key}", spec, b,
                                       anchor, start, max(anchor + spec.duration_minutes * 60.0, start)))
                current[key] = len(records) - 1
                continue
            rec = records[idx]
            if rec.end <= b or _same_except(rec.spec, spec):
                continue  # over (an ended fault never restarts), or nothing that matters changed
            if rec.start < b:  # under way: only when it ends can still change
                if not _same_except(rec.spec, spec, "duration_minutes"):
                    raise ScenarioError(
                        f"{self.path}: faults[{i}]: fault {key!r} has started; only its "
                        "duration_minutes can change (clear it and inject a new one)")
                end = max(rec.anchor + spec.duration_minutes * 60.0, b)
                records[idx] = dataclasses.replace(rec, spec=spec, end=end)
            else:  # scheduled: taken as written, "now" counting from when it was first read
                anchor = self._anchor(spec, rec.first_seen)
                start = max(anchor, b)
                records[idx] = dataclasses.replace(
                    rec, spec=spec, anchor=anchor, start=start,
                    end=max(anchor + spec.duration_minutes * 60.0, start))
        present = {key for key, _ in entries}
        for key, idx in list(current.items()):
            if key not in present:
                rec = records[idx]
                if rec.end > b:
                    records[idx] = dataclasses.replace(rec, end=max(rec.start, b))
                del current[key]
        return records, current

    def write_state(self, boundary_epoch: float, others: Iterable[ActiveFault] = ()) -> None:
        """Write ``control.state.json`` (see ``state``); the live loop calls this each bucket.
        Atomic (rename) but not fsynced: it is a view, rewritten a bucket later."""
        doc = self.state(boundary_epoch, others)
        write_atomic(state_path(self.path), json.dumps(doc, indent=2) + "\n", fsync=False)

    def state(self, now_epoch: float, others: Iterable[ActiveFault] = ()) -> dict[str, Any]:
        """What the simulation has applied, for ``storefront-sim faults``::

            {"version": 1, "scenario": NAME, "instances": N, "simulated_now": ISO,
             "control_error": LINE|null,
             "faults": [{"id", "fault_id", "origin": "control"|"scenario"|"random",
                         "in_file": bool, "status": "scheduled"|"active"|"ended",
                         "type", "start", "end", "magnitude", "ramp_minutes", "target",
                         "incident_type"}],
             "changes": [{"id", "change_id", "in_file": bool, "status": "scheduled"|"made",
                          "kind", "at", "hosts", "what", "note"}]}

        ``id`` is the control file's id (the fault id for ``others``, the scenario's and
        random faults); ``in_file`` tells whether the entry is still in the control file.
        Times are simulated UTC; nothing in it comes from the wall clock."""
        current = set(self._current.values())
        rows = [(rec.key, "control", i in current, rec.fault()) for i, rec in enumerate(self._records)]
        scenario_prefix = f"{self.scenario.name}-f"
        for fault in others:
            origin = "scenario" if fault.fault_id.startswith(scenario_prefix) else "random"
            rows.append((fault.fault_id, origin, False, fault))
        return {
            "version": STATE_VERSION,
            "scenario": self.scenario.name,
            "instances": self.scenario.storefront.instances,
            "simulated_now": iso(now_epoch),
            "control_error": self.error,
            "faults": [
                {"id": key, "fault_id": f.fault_id, "origin": origin, "in_file": in_file,
                 "status": fault_status(f, now_epoch), "type": f.type, "start": iso(f.start_epoch),
                 "end": iso(f.end_epoch), "magnitude": f.magnitude, "ramp_minutes": f.ramp_s / 60.0,
                 "target": f.target, "incident_type": f.incident_type}
                for key, origin, in_file, f in rows
            ],
            "changes": self._change_rows(now_epoch),
        }

    def _change_rows(self, now_epoch: float) -> list[dict[str, Any]]:
        """The runtime changes for the state file (a dropped one was never made: not listed)."""
        current = set(self._change_current.values())
        rows = []
        for i, rec in enumerate(self._change_records):
            if rec.dropped:
                continue
            made = rec.made(now_epoch)
            note = None
            if made and i not in current:
                note = "removed from the file, but a change once made cannot be undone"
            elif made:
                note = "made; removing it does not undo it"
            change = self._active(rec)
            rows.append({"id": rec.key, "change_id": rec.change_id, "in_file": i in current,
                         "status": "made" if made else "scheduled", "kind": rec.spec.kind,
                         "at": iso(rec.epoch), "hosts": list(change.hosts),
                         "what": change_summary(change), "note": note})
        return rows


def fault_status(fault: ActiveFault, now_epoch: float) -> str:
    if fault.end_epoch <= now_epoch or fault.end_epoch <= fault.start_epoch:
        return "ended"
    return "active" if fault.start_epoch <= now_epoch else "scheduled"


def read_state(path: Path) -> dict[str, Any] | None:
    """A state file written by ``write_state``; None when absent or not one (e.g. cut short)."""
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if not isinstance(doc, dict) or doc.get("version") != STATE_VERSION:
        return None
    return doc


def pinned_fault(fault: ActiveFault) -> dict[str, Any] | None:
    """The scenario-file entry that replays a runtime fault in a batch run (absolute start,
    actual duration); None for one that never ran (removed before its start)."""
    if fault.end_epoch <= fault.start_epoch:
        return None
    return {"type": fault.type, "start": iso(fault.start_epoch),
            "duration_minutes": (fault.end_epoch - fault.start_epoch) / 60.0,
            "ramp_minutes": fault.ramp_s / 60.0, "magnitude": fault.magnitude,
            "target": fault.target, "incident_type": fault.incident_type}


def iso(epoch_s: float) -> str:
    return dt.datetime.fromtimestamp(epoch_s, dt.UTC).isoformat().replace("+00:00", "Z")


def write_atomic(path: Path, text: str, fsync: bool = True) -> None:
    """Replace ``path`` with ``text`` so that a reader sees the old or the new file, never a
    part: a temporary file in the same directory, flushed (and fsynced), then renamed."""
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            os.fchmod(fh.fileno(), 0o644)
            fh.write(text)
            fh.flush()
            if fsync:
                os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
    if fsync:  # the rename itself survives a crash
        dir_fd = os.open(path.parent, os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)
