"""A run's directory: one live run at a time, its part files, and resuming a killed run.

A run locks ``OUTPUT_DIR/.lock`` (``flock``: the kernel releases it when the process dies,
even by ``kill -9``), so a second live run into the same directory stops with one line
instead of clobbering the first's files. Its segments' part files live in
``OUTPUT_DIR/.segments-run`` beside a manifest naming the run (scenario, seed, window, run
key, the scenario's content hash, the segment plan). Every exit path the process sees
removes the directory; only a killed process leaves it, and then the next run into the
directory removes it, or ``--resume`` continues from the finished segments in it after
checking that they belong to the same run and are complete (see ``sim.run.parallel``'s result
records).
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import shutil
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from sim.config import Scenario
from sim.core.clock import Window
from sim.run.parallel import ForeignRecord, SegmentError, read_record
from sim.run.segment import SegmentPlan, SegmentResult

PARTS = ".segments-run"
STALE = ".segments-*"  # also the temporary directories of older versions
LOCK = ".lock"
MANIFEST = "manifest.json"


class RunDirError(RuntimeError):
    """The directory cannot be used for this run (busy, nothing to resume, another run's
    parts): one line for the user, exit 2."""


@contextlib.contextmanager
def locked(run_dir: Path) -> Iterator[None]:
    """Hold the directory's lock for the run (fails at once if another run holds it)."""
    run_dir.mkdir(parents=True, exist_ok=True)
    fd = os.open(run_dir / LOCK, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise RunDirError(f"{run_dir}: another run is writing into this directory "
                              f"(it holds {run_dir / LOCK}); wait for it or use another "
                              "--output-dir") from None
        yield
    finally:
        os.close(fd)


def identity(scenario: Scenario, window: Window, run_key: str,
             plans: Sequence[SegmentPlan]) -> dict[str, Any]:
    """What makes two runs the same run (the worker count and the backend do not)."""
    content = scenario.model_dump(mode="json")
    content["output"].pop("dir", None)  # where it is written is not what is written
    digest = hashlib.sha256(json.dumps(content, sort_keys=True).encode()).hexdigest()
    return {
        "scenario": scenario.name,
        "seed": scenario.seed,
        "window": [window.start.isoformat(), window.end.isoformat()],
        "run_key": run_key,
        "scenario_sha256": digest,
        "segments": [[p.index, p.window.start.isoformat(), p.window.end.isoformat(),
                      p.warmup_s, [f.fault_id for f in p.faults]] for p in plans],
    }


def _remove_stale(run_dir: Path, keep: Path | None = None) -> None:
    for path in run_dir.glob(STALE):
        if path != keep and path.is_dir():
            shutil.rmtree(path, ignore_errors=True)


def fresh_parts(run_dir: Path, ident: dict[str, Any]) -> Path:
    """A new part directory (a killed run's is removed first), with the run's manifest."""
    _remove_stale(run_dir)
    parts = run_dir / PARTS
    parts.mkdir()
    tmp = parts / (MANIFEST + ".partial")
    tmp.write_text(json.dumps(ident, indent=1) + "\n", encoding="utf-8")
    os.replace(tmp, parts / MANIFEST)
    return parts


def resumed_parts(run_dir: Path, ident: dict[str, Any], plans: Sequence[SegmentPlan]
                  ) -> tuple[Path, dict[int, SegmentResult]]:
    """The killed run's part directory and its finished segments, checked."""
    parts = run_dir / PARTS
    try:
        manifest = json.loads((parts / MANIFEST).read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise RunDirError(f"{run_dir}: --resume: no killed run to resume here "
                          f"(no {PARTS}/{MANIFEST})") from None
    except ValueError:
        raise RunDirError(f"{parts / MANIFEST}: --resume: unreadable manifest") from None
    differ = [k for k in ident if manifest.get(k) != ident[k]]
    if differ:
        raise RunDirError(f"{parts / MANIFEST}: --resume: the parts here belong to another run "
                          f"({', '.join(differ)} differ); run without --resume to start again")
    _remove_stale(run_dir, keep=parts)
    finished: dict[int, SegmentResult] = {}
    for plan in plans:
        try:
            result = read_record(parts, plan.index)
        except ForeignRecord as exc:
            raise RunDirError(f"{parts}: --resume: the parts here were written by another version "
                              f"of storefront-sim ({exc}); run without --resume to start again"
                              ) from None
        except SegmentError as exc:
            raise RunDirError(f"--resume: {exc}; run without --resume to start again") from None
        if result is not None:
            finished[plan.index] = result
    return parts, finished
