"""The mypyc-compiled hot path: same bytes as the sources, and never a stale build."""

from __future__ import annotations

import hashlib
import importlib.machinery
import os
import subprocess
import sys
from pathlib import Path

import pytest

import sim
from sim import SourcesFirst, compiled_modules, stale_modules

ROOT = Path(__file__).resolve().parents[1]
EXT = importlib.machinery.EXTENSION_SUFFIXES[0]  # e.g. .cpython-311-x86_64-linux-gnu.so


def _run(tmp_path: Path, name: str, pure: bool) -> bytes:
    env = {k: v for k, v in os.environ.items() if k != "STOREFRONT_SIM_PURE_PYTHON"}
    if pure:
        env["STOREFRONT_SIM_PURE_PYTHON"] = "1"
    out = tmp_path / name
    code = (
        "import sys, sim.model.app_instance as s; print(s.__file__, file=sys.stderr);"
        "from sim.cli import main; sys.exit(main(sys.argv[1:]))"
    )
    proc = subprocess.run(
        [sys.executable, "-c", code, str(ROOT / "scenarios/payment_timeout.yaml"),
         "--today", "2026-11-27", "--start", "today 18:20", "--end", "today 18:40",
         "--output-dir", str(out), "--quiet", "--workers", "1"],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=300, check=True,
    )
    loaded = proc.stderr.splitlines()[0]
    assert loaded.endswith(".py") == pure, loaded
    return (out / "all_data.ndjson").read_bytes() + (out / "incidents.ndjson").read_bytes()


def test_compiled_modules_write_the_same_bytes_as_the_sources(tmp_path):
    modules = compiled_modules(Path(sim.__file__).parent)
    if not modules:
        if os.environ.get("CI") == "true":
            pytest.fail("the hot path is not compiled: scripts/test installs it with mypyc")
        pytest.skip("not compiled (STOREFRONT_SIM_PURE_PYTHON=1 install)")
    assert not stale_modules(modules), "rebuild: pip install -e ."
    assert "sim.model.app_instance" in modules and "sim.core.engine" in modules
    compiled = _run(tmp_path, "compiled", pure=False)
    sources = _run(tmp_path, "sources", pure=True)
    assert len(compiled) > 1_000_000
    assert hashlib.sha256(compiled).digest() == hashlib.sha256(sources).digest()


def test_a_source_edited_after_compiling_is_stale(tmp_path):
    pkg = tmp_path / "pkg"
    (pkg / "sub").mkdir(parents=True)
    for rel in ("a", "b", "sub/c"):
        (pkg / f"{rel}.py").write_text("X = 'source'\n")
        (pkg / f"{rel}{EXT}").write_bytes(b"")
    (pkg / "only_source.py").write_text("")
    (pkg / f"orphan{EXT}").write_bytes(b"")
    for path in pkg.rglob("*"):
        os.utime(path, (1_000_000, 1_000_000))
    modules = compiled_modules(pkg)
    assert sorted(modules) == ["pkg.a", "pkg.b", "pkg.sub.c"]
    assert stale_modules(modules) == []
    os.utime(pkg / "sub/c.py", (1_000_100, 1_000_100))  # edited after the build
    assert stale_modules(modules) == ["pkg.sub.c"]


def test_sources_first_imports_the_py_file(tmp_path):
    (tmp_path / "m.py").write_text("WHERE = 'source'\n")
    finder = SourcesFirst({"storefront_probe_m": tmp_path / "m.py"})
    spec = finder.find_spec("storefront_probe_m")
    assert spec is not None and spec.origin == str(tmp_path / "m.py")
    assert finder.find_spec("json") is None
