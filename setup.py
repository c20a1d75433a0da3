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
    "sim/core/engine.py",
    "sim/core/rng.py",
    "sim/model/traffic.py",
    "sim/model/customers.py",
    "sim/model/state_log.py",
    "sim/model/request.py",
    "sim/model/app_instance.py",
    "sim/model/endpoints.py",
    "sim/model/everyday.py",
    "sim/model/load_balancer.py",
    "sim/model/shoppers.py",
    *sorted(p for p in glob("sim/model/resources/*.py") if not p.endswith("__init__.py")),
    "sim/telemetry/documents.py",
    "sim/telemetry/minutes.py",
    "sim/telemetry/recorder.py",
    "sim/telemetry/spans.py",
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
