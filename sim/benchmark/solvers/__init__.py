"""Reference solvers: what a submission scores without an investigator.

``naive`` trusts the pager; ``rules`` reads the series, the metrics and the changes the way a
checklist would. Both read only a case's evidence (``sim.benchmark.evidence``) and answer each
case with a list of incidents in the submission's shape; neither is tuned to the answer key.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from sim.benchmark.evidence import Evidence
from sim.benchmark.solvers import naive, rules

Solver = Callable[[Evidence], list[dict[str, Any]]]

SOLVERS: dict[str, Solver] = {"naive": naive.solve, "rules": rules.solve}
