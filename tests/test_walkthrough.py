"""docs/architecture.md's walk-through of adding a resource works as written.

The two code blocks of "Adding a resource" (the SessionCache and the home handler that
uses it) are executed exactly as the document shows them, wired as its steps say, and the
new resource must then change the DB load the way the walk-through claims.
"""

from __future__ import annotations

import dataclasses
import re
from pathlib import Path

import pytest

from sim.config import Scenario
from sim.core.rng import RandomStreams
from sim.model.customers import make_customer_pool
from sim.model.endpoints import ENDPOINTS
from sim.model.faults import FaultSchedule
from sim.model.request import Request
from sim.model.resources import ignore_state
from sim.model.storefront import Storefront
from sim.run.segment import ENGINES
from sim.telemetry.documents import DocumentFactory
from sim.telemetry.minutes import MinuteAggregator
from sim.telemetry.recorder import Recorder

DOC = Path(__file__).resolve().parents[1] / "docs" / "architecture.md"


def walkthrough_blocks() -> list[str]:
    text = DOC.read_text(encoding="utf-8")
    section = text[text.index("## Adding a resource"):]
    section = section[:section.index("\n## ", 3)]
    return re.findall(r"```python\n(.*?)```", section, flags=re.S)


def run_home_pages(engine: str, hit_ratio: float) -> tuple[int, tuple[int, int]]:
    """Queries the database ran for 2,000 home pages, and the cache's (hits, misses)."""
    env = ENGINES[engine]()
    namespace = {"ignore_state": ignore_state}
    for block in walkthrough_blocks():
        exec(block, namespace)  # noqa: S102 - the documented code, as written
    scenario = Scenario.model_validate({"storefront": {"instances": 2},
                                        "background_errors": {"error_rate_normal": 0}})
    streams = RandomStreams(5)
    docs: list = []
    recorder = Recorder(env, scenario.storefront, DocumentFactory(0, 1), MinuteAggregator(0),
                        streams.stream("orders"), docs.append, 0.0, 1e9, lambda s: "20260101")
    shop = Storefront(env, scenario, streams, FaultSchedule([], lambda: env.now), recorder)
    # step 3: wire it (a Backends field every instance reaches as app.backends.sessions)
    shop.backends.sessions = namespace["SessionCache"](env, streams.stream("session-cache"),
                                                       hit_ratio, 0.001)
    # step 4: the home page uses it
    home = dataclasses.replace(ENDPOINTS["home"], handler=namespace["home"])
    customer = make_customer_pool(1, 1)[0]

    def shoppers():
        for i in range(2000):
            yield env.timeout(0.02)
            env.process(shop.shoppers.visit(Request(home, 0.0, customer, f"s{i}")))

    env.process(shoppers())
    env.run(until=200)
    assert sum(1 for d in docs if d.event_type == "transaction") == 2000
    return shop.backends.db.jobs, shop.backends.sessions.take_interval()


@pytest.mark.parametrize("engine", sorted(ENGINES))
def test_documented_session_cache_adds_db_reads_only_on_misses(engine):
    assert len(walkthrough_blocks()) == 2
    warm_queries, (hits, misses) = run_home_pages(engine, hit_ratio=0.95)
    cold_queries, (cold_hits, cold_misses) = run_home_pages(engine, hit_ratio=0.0)
    assert hits + misses == 2000 and 0.92 < hits / 2000 < 0.98
    assert cold_hits == 0 and cold_misses == 2000
    # every home page reads its featured products; a miss adds the session's own read
    assert warm_queries == 2000 + misses
    assert cold_queries == 4000
