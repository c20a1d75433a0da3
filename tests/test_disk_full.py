"""A full disk, a file size limit or an unwritable output directory: one line naming the
path and what the run still needed, a non-zero exit, nothing of the failed run left behind
(no ``.partial``, no ``.segments-*``) and the previous run's files byte for byte as they were.

The file size limit (RLIMIT_FSIZE: writes past it fail with EFBIG) needs no privileges and
always runs; the full-disk variants mount a small tmpfs and run where mounting is allowed.
"""

from __future__ import annotations

import ctypes
import hashlib
import os
import re
import resource
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from sim.cli import main

ROOT = Path(__file__).resolve().parent.parent
SCENARIO = ""  # baseline.yaml with the seed's split files on (they double what a run writes)


@pytest.fixture(scope="module", autouse=True)
def _scenario_with_split_files(tmp_path_factory: pytest.TempPathFactory) -> None:
    global SCENARIO
    raw = yaml.safe_load((ROOT / "scenarios" / "baseline.yaml").read_text())
    raw["output"]["split_files"] = True
    path = tmp_path_factory.mktemp("scenario") / "baseline.yaml"
    path.write_text(yaml.safe_dump(raw))
    SCENARIO = str(path)
DAY = ["--today", "2026-11-27", "--base-tps", "2", "--quiet"]
EARLIER = ["--start", "today 10:00", "--end", "today 10:02", *DAY]   # the earlier run
FIVE_MIN = ["--start", "today 11:00", "--end", "today 11:05", *DAY]  # 1.03 MB all_data
LINE = re.compile(r"^error: (?P<path>\S+): (?P<reason>[^;]+) after writing (?P<written>[\d.,]+ \w+)"
                  r"; the run needed about (?P<more>[\d.,]+ \w+) more there \(about "
                  r"(?P<total>[\d.,]+) (?P<unit>kB|MB|GB) in all\); removed what this run "
                  r"wrote, earlier files are untouched$")


def _sha(out: Path) -> dict[str, str]:
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(out.iterdir())}


def _earlier_run(out: Path) -> dict[str, str]:
    assert main([SCENARIO, "--output-dir", str(out), *EARLIER]) == 0
    return _sha(out)


def _mb(value: str, unit: str) -> float:
    return float(value.replace(",", "")) * {"kB": 1e-3, "MB": 1.0, "GB": 1e3}[unit]


def _run(args: list[str], cwd: Path, fsize: int | None = None, drop_dac: bool = False
         ) -> subprocess.CompletedProcess[str]:
    def limits() -> None:
        if fsize is not None:
            resource.setrlimit(resource.RLIMIT_FSIZE, (fsize, fsize))
        if drop_dac and os.geteuid() == 0:
            # root ignores permission bits: drop CAP_DAC_OVERRIDE (1) and
            # CAP_DAC_READ_SEARCH (2) from the bounding set, so the exec'd run has neither
            libc = ctypes.CDLL(None, use_errno=True)
            for cap in (1, 2):
                if libc.prctl(24, cap, 0, 0, 0) != 0:  # PR_CAPBSET_DROP
                    raise OSError(ctypes.get_errno(), "prctl")

    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.run([sys.executable, str(ROOT / "run_sim.py"), SCENARIO, *args],
                          capture_output=True, text=True, cwd=cwd, env=env, timeout=300,
                          preexec_fn=limits)


def _assert_nothing_left(out: Path, before: dict[str, str]) -> None:
    assert _sha(out) == before  # same names (no .partial, no .segments-*), same bytes


def test_file_size_limit_mid_run_is_one_line_and_keeps_the_earlier_files(tmp_path):
    """20 simulated minutes (~3.6 MB all_data, ~7 MB with the split files) against a 1 MB
    file size limit: the run stops at the first write past it."""
    out, full = tmp_path / "out", tmp_path / "full"
    before = _earlier_run(out)
    window = ["--start", "today 11:00", "--end", "today 11:20", *DAY]
    proc = _run(["--output-dir", str(out), *window], tmp_path, fsize=1 << 20)
    assert proc.returncode == 1, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    m = LINE.match(lines[0])
    assert m, lines[0]
    # the first write past the limit: the segment's part file (the run keeps its segments
    # in part files until it joins them into all_data at the end)
    assert m["path"] in (str(out / "all_data.ndjson.partial"),
                         str(out / ".segments-run" / "segment-000.ndjson")), m["path"]
    assert m["reason"] == "File too large"
    _assert_nothing_left(out, before)
    # the estimate against what the same run really writes without the limit
    assert main([SCENARIO, "--output-dir", str(full), *window]) == 0
    real = sum(p.stat().st_size for p in full.iterdir()) / 1e6
    assert 0.7 * real <= _mb(m["total"], m["unit"]) <= 1.4 * real, (m["total"], real)


def test_file_size_limit_in_a_worker_is_one_line_not_a_worker_traceback(tmp_path):
    """A window across midnight is two segments, simulated by worker processes that write
    part files into ``.segments-*`` in the output directory: the limit hits one of them
    (or the parent's file); either way one line, and the part directory is gone."""
    out = tmp_path / "out"
    before = _earlier_run(out)
    window = ["--start", "2026-11-27T23:50", "--end", "2026-11-28T00:10", "--workers", "2", *DAY]
    proc = _run(["--output-dir", str(out), *window], tmp_path, fsize=600_000)
    assert proc.returncode == 1, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in proc.stderr, proc.stderr
    m = LINE.match(lines[0])
    assert m, lines[0]
    assert m["reason"] == "File too large"
    failed = Path(m["path"])
    assert failed == out / "all_data.ndjson.partial" or (
        failed.parent.parent == out and failed.parent.name.startswith(".segments-")), failed
    _assert_nothing_left(out, before)


@pytest.fixture
def small_disk(tmp_path):
    """Mount a tmpfs of a given size; skipped only where mounting is impossible."""
    mounts: list[Path] = []

    def mount(size: str) -> Path:
        point = tmp_path / f"disk{len(mounts)}"
        point.mkdir()
        proc = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs",
                               str(point)], capture_output=True, text=True, timeout=30)
        if proc.returncode != 0:
            pytest.skip(f"cannot mount a tmpfs here: {proc.stderr.strip()}")
        mounts.append(point)
        return point

    yield mount
    for point in mounts:
        subprocess.run(["umount", str(point)], capture_output=True, timeout=30)


def test_disk_full_mid_run(small_disk, capsys):
    disk = small_disk("1600k")
    out = disk / "out"
    before = _earlier_run(out)  # ~0.7 MB with its split files
    capsys.readouterr()
    code = main([SCENARIO, "--output-dir", str(out), *FIVE_MIN])
    err = capsys.readouterr().err
    assert code == 1
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    m = LINE.match(lines[0])
    assert m, lines[0]
    assert m["path"] in (str(out / "all_data.ndjson.partial"),
                         str(out / ".segments-run" / "segment-000.ndjson")), m["path"]
    assert m["reason"] == "No space left on device"
    # the five minutes write 1.03 MB of documents, twice (all_data and the split files)
    assert 1.6 <= _mb(m["total"], m["unit"]) <= 2.5, lines[0]
    _assert_nothing_left(out, before)


def test_disk_full_while_writing_the_split_files_keeps_every_earlier_file(small_disk, capsys):
    """all_data fits, its copy into the split files does not: nothing may have been renamed
    over the earlier run's files by then."""
    disk = small_disk("1800k")
    out = disk / "out"
    before = _earlier_run(out)
    capsys.readouterr()
    code = main([SCENARIO, "--output-dir", str(out), *FIVE_MIN])
    err = capsys.readouterr().err
    assert code == 1
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    m = LINE.match(lines[0])
    assert m, lines[0]
    assert m["path"] in {str(out / f"{name}.partial") for name in
                         ("normal_data.ndjson", "incident_data.ndjson", "recovery_data.ndjson")}
    assert m["reason"] == "No space left on device"
    # all_data was complete (1.03 MB): the estimate is its size twice
    assert 2.0 <= _mb(m["total"], m["unit"]) <= 2.1, lines[0]
    _assert_nothing_left(out, before)


def test_unwritable_output_is_refused_before_simulating(tmp_path, capsys):
    blocker = tmp_path / "blocker"
    blocker.write_text("not a directory\n")
    for target, expected in ((blocker, f"error: {blocker}: not a directory"),
                             (blocker / "out", f"error: {blocker / 'out'}: cannot create it: "
                                               f"{blocker} is not a directory")):
        assert main([SCENARIO, "--output-dir", str(target), *FIVE_MIN]) == 2
        err = capsys.readouterr().err
        assert err.strip().splitlines() == [err.strip()] and err.startswith(expected), err
    assert blocker.read_text() == "not a directory\n"


def test_read_only_output_is_refused_before_simulating(small_disk, capsys):
    disk = small_disk("1m")
    out = disk / "out"
    before = _earlier_run(out)
    capsys.readouterr()
    remount = subprocess.run(["mount", "-o", "remount,ro", str(disk)], capture_output=True,
                             timeout=30)
    assert remount.returncode == 0, remount.stderr
    assert main([SCENARIO, "--output-dir", str(out), *FIVE_MIN]) == 2
    err = capsys.readouterr().err.strip()
    assert err == f"error: {out}: {out} is on a read-only file system"
    _assert_nothing_left(out, before)


def test_output_dir_without_write_permission_is_refused(tmp_path):
    out = tmp_path / "out"
    before = _earlier_run(out)
    out.chmod(0o555)
    try:
        proc = _run(["--output-dir", str(out), *FIVE_MIN], tmp_path, drop_dac=True)
    except subprocess.SubprocessError as exc:  # root without CAP_SETPCAP: cannot drop it
        pytest.skip(f"cannot take root's permission override away here: {exc}")
    finally:
        out.chmod(0o755)
    assert proc.returncode == 2, proc.stderr
    assert proc.stderr.strip() == f"error: {out}: {out} is not writable (permission denied)"
    _assert_nothing_left(out, before)
