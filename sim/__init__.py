"""storefront-sim: a discrete-event simulation of an e-commerce storefront.

The hot modules are compiled with mypyc when the package is installed (``setup.py``). A
compiled module would silently shadow later edits to its source, so when any source is
newer than its compiled module, or ``STOREFRONT_SIM_PURE_PYTHON=1``, every compiled
module is imported from its source instead. It is all or none: compiled modules call each
other's classes directly, past the import system.
"""

from __future__ import annotations

import importlib.abc
import importlib.machinery
import importlib.util
import os
import sys
from collections.abc import Sequence
from importlib.machinery import ModuleSpec
from pathlib import Path
from types import ModuleType


def compiled_modules(package_dir: Path) -> dict[str, tuple[Path, Path]]:
    """Module name -> (source, compiled extension), for every source with a compiled twin."""
    found: dict[str, tuple[Path, Path]] = {}
    for suffix in importlib.machinery.EXTENSION_SUFFIXES:
        for ext in sorted(package_dir.rglob("*" + suffix)):
            source = ext.with_name(ext.name[: -len(suffix)] + ".py")
            if source.exists():
                name = ".".join(source.relative_to(package_dir.parent).with_suffix("").parts)
                found.setdefault(name, (source, ext))
    return found


def stale_modules(modules: dict[str, tuple[Path, Path]]) -> list[str]:
    """Modules whose source was changed after they were compiled."""
    return sorted(name for name, (source, ext) in modules.items()
                  if source.stat().st_mtime > ext.stat().st_mtime)


class SourcesFirst(importlib.abc.MetaPathFinder):
    """Imports the given modules from their ``.py`` files, ahead of compiled extensions."""

    def __init__(self, sources: dict[str, Path]) -> None:
        self.sources = sources

    def find_spec(self, fullname: str, path: Sequence[str] | None = None,
                  target: ModuleType | None = None) -> ModuleSpec | None:
        source = self.sources.get(fullname)
        if source is None:
            return None
        return importlib.util.spec_from_file_location(fullname, source)


def _use_sources_when_needed() -> None:
    modules = compiled_modules(Path(__file__).parent)
    if not modules:
        return
    forced = os.environ.get("STOREFRONT_SIM_PURE_PYTHON") == "1"
    stale = [] if forced else stale_modules(modules)
    if not (forced or stale):
        return
    sys.meta_path.insert(0, SourcesFirst({name: src for name, (src, _) in modules.items()}))
    if stale and not os.environ.get("_STOREFRONT_SIM_STALE_WARNED"):
        os.environ["_STOREFRONT_SIM_STALE_WARNED"] = "1"  # worker processes inherit it: one line a run
        print(f"storefront-sim: {modules[stale[0]][0]} changed after it was compiled; running "
              "the Python sources (slower). Rebuild with: pip install -e .", file=sys.stderr)


_use_sources_when_needed()
