"""Compiles the simulation's hot path to C with mypyc at install time.

The modules below are fully typed Python; mypyc turns them into C extensions that run
the same code faster (docs/performance.md). Set STOREFRONT_SIM_PURE_PYTHON=1 to install
without compiling (no C compiler needed); ``sim/__init__.py`` also falls back to the
sources when one of them is newer than its compiled module.
"""

import os
from glob import glob

from setuptools import setup

COMPILED = [
    "sim/engine.py",
    "sim/rng.py",
    "sim/traffic.py",
    "sim/documents.py",
    "sim/groundtruth.py",
    "sim/recorder.py",
    "sim/request.py",
    "sim/app_instance.py",
    "sim/endpoints.py",
    "sim/everyday.py",
    "sim/load_balancer.py",
    "sim/shoppers.py",
    *sorted(p for p in glob("sim/resources/*.py") if not p.endswith("__init__.py")),
]

# an extension of a module no longer compiled would shadow its source: remove it
for ext in glob("sim/**/*.so", recursive=True) + glob("sim/**/*.pyd", recursive=True):
    if ext.split(".")[0] + ".py" not in COMPILED:
        os.remove(ext)

ext_modules = []
if os.environ.get("STOREFRONT_SIM_PURE_PYTHON") != "1":
    from mypyc.build import mypycify

    ext_modules = mypycify(
        ["--explicit-package-bases", "--ignore-missing-imports", "--follow-imports=silent",
         *COMPILED],
        opt_level="3",
        group_name="storefront_sim",
    )

setup(ext_modules=ext_modules)
