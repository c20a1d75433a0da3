"""Component behaviour as exact timelines, SimPy style: [(what, env.now), ...]."""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import pytest

from sim.config import Scenario
from sim.documents import DocumentFactory, make_customer_pool
from sim.endpoints import APP, ENDPOINTS
from sim.engine import Environment
from sim.faults import FaultSchedule
from sim.resources.cache import BufferCache
from sim.resources.circuit_breaker import CLOSED, HALF_OPEN, OPEN, CircuitBreaker
from sim.resources.db import DbConnectionPool, DbServer
from sim.resources.jvm_heap import FULL
from sim.resources.worker_pool import WorkerPool
from sim.rng import RandomStream, RandomStreams
from sim.storefront import Request, Storefront


def test_circuit_breaker_opens_probes_and_closes():
    now = [0.0]
    timeline = []
    breaker = CircuitBreaker(
        "gw", window_size=4, minimum_calls=4, failure_rate_threshold=50,
        slow_call_rate_threshold=100, slow_call_duration_s=10, wait_open_s=30,
        half_open_calls=2, clock=lambda: now[0],
        on_transition=lambda name, old, new, t: timeline.append((old, new, t)),
    )
    # three failures in four calls (75% >= 50%) opens it once the minimum is reached
    for t, failed in ((1, True), (2, False), (3, True)):
        now[0] = t
        assert breaker.try_acquire()
        breaker.record(0.1, failed)
    assert breaker.state == CLOSED  # only 3 calls: below minimum_calls
    now[0] = 4
    assert breaker.try_acquire()
    breaker.record(0.1, True)
    assert breaker.state == OPEN
    now[0] = 20
    assert not breaker.try_acquire()  # still waiting in open state
    now[0] = 34
    assert breaker.try_acquire()  # first call after the wait: half-open, probe 1
    assert breaker.try_acquire()  # probe 2
    assert not breaker.try_acquire()  # no third probe
    breaker.record(0.1, True)
    now[0] = 35
    breaker.record(0.1, True)  # both probes failed: open again
    now[0] = 66
    assert breaker.try_acquire() and breaker.try_acquire()
    breaker.record(0.1, False)
    now[0] = 67
    breaker.record(0.1, False)
    assert timeline == [
        (CLOSED, OPEN, 4), (OPEN, HALF_OPEN, 34), (HALF_OPEN, OPEN, 35),
        (OPEN, HALF_OPEN, 66), (HALF_OPEN, CLOSED, 67),
    ]


def test_circuit_breaker_slow_calls_count_when_configured():
    breaker = CircuitBreaker(
        "gw", window_size=2, minimum_calls=2, failure_rate_threshold=100,
        slow_call_rate_threshold=100, slow_call_duration_s=5, wait_open_s=30,
        half_open_calls=1, clock=lambda: 0.0,
    )
    breaker.record(6.0, False)
    breaker.record(7.0, False)
    assert breaker.state == OPEN


def test_db_pool_connection_timeout_timeline():
    env = Environment()
    pool = DbConnectionPool(env.steps, "app-01", max_size=1, timeout_s=5)
    timeline = []

    def acquired(name, waited):
        timeline.append((f"{name} acquired", env.now, waited))

    def timed_out(name, waited):
        timeline.append((f"{name} timed out", env.now, waited))

    pool.acquire("A", acquired, timed_out)
    env.steps.call_later(8, lambda _: pool.release(pool.generation), None)
    env.steps.call_later(1, lambda _: pool.acquire("B", acquired, timed_out), None)
    env.steps.call_later(7, lambda _: pool.acquire("C", acquired, timed_out), None)
    env.run()
    assert timeline == [("A acquired", 0, 0.0), ("B timed out", 6, 5), ("C acquired", 8, 1)]
    assert pool.timeouts == 1


def test_db_pool_reset_forgets_stale_connections():
    env = Environment()
    pool = DbConnectionPool(env.steps, "app-01", max_size=1, timeout_s=5)
    pool.acquire("A", lambda *_: None, lambda *_: None)
    old = pool.generation
    pool.reset()
    pool.acquire("B", lambda *_: None, lambda *_: None)
    pool.release(old)  # A's connection died with the old JVM: must not free B's
    assert pool.active == 1


def test_db_server_limits_concurrency_fifo():
    env = Environment()
    server = DbServer(env.steps, max_active=2)
    done = []
    for name in "ABC":
        server.execute(1.0, name, lambda n: done.append((n, env.now)))
    env.run()
    assert done == [("A", 1.0), ("B", 1.0), ("C", 2.0)]


def test_worker_pool_queues_then_rejects():
    started = []
    pool = WorkerPool(max_threads=2, accept_queue=1, on_start=started.append)
    assert pool.submit("A") and pool.submit("B")
    assert pool.submit("C")  # queued
    assert not pool.submit("D")  # accept queue full
    assert started == ["A", "B"]
    pool.release()
    assert started == ["A", "B", "C"]
    pool.release()
    pool.release()
    assert pool.active == 0 and pool.rejected == 1


class _ZeroNormals:
    """A numpy-like generator whose normal draws are all 0: every lognormal draw is exactly
    its median, so the timeline is exact."""

    def random(self, n):
        return np.full(n, 0.5)

    def standard_normal(self, n):
        return np.zeros(n)

    def standard_exponential(self, n):
        return np.ones(n)


def _single_instance_shop(env, docs_out):
    scenario = Scenario.model_validate({
        "storefront": {"instances": 1},
        "background_errors": {"error_rate_normal": 0},  # no everyday failures in this timeline
    })
    shop = Storefront(
        env.steps, scenario, RandomStreams(1), FaultSchedule([], lambda: env.now), DocumentFactory(0, 1),
        docs_out.append, 0.0, 1e9, lambda s: "20260101",
    )
    shop.app_rng = RandomStream(_ZeroNormals())
    return shop


def test_gc_pause_stalls_in_flight_work():
    env = Environment()
    docs = []
    shop = _single_instance_shop(env, docs)
    inst = shop.instances[0]
    inst.app_scale = 1.0  # each APP step takes exactly its median, 0.1 s
    # the home page reduced to one APP step that allocates nothing (no GC of its own)
    probe = dataclasses.replace(ENDPOINTS["home"], app_ms_median=0.1, steps=(APP,), alloc_mb=0.0)
    customer = make_customer_pool(1, 1)[0]
    arrivals = {}

    def arrive(name):
        arrivals[name] = env.now
        shop.arrive(Request(probe, env.now, customer, name))

    env.steps.call_later(0.0, arrive, "r1")
    env.steps.call_later(0.05, lambda _: inst._on_gc(FULL, 0.5), None)  # stop-the-world 0.05-0.55
    env.steps.call_later(0.2, arrive, "r2")
    env.steps.call_later(0.6, arrive, "r3")
    env.run()
    transactions = [d for d in docs if d["event_type"] == "transaction"]
    timeline = [(d["session_id"], round(arrivals[d["session_id"]] + d["response_time_ms"] / 1000, 6))
                for d in transactions]
    assert timeline == [("r1", 0.55), ("r2", 0.55), ("r3", 0.7)]
    # r1's step would have ended at 0.1 and r2's at 0.3: each waits for the pause to end
    assert [d["timing"]["gc_pause_ms"] for d in transactions] == [450.0, 250.0, 0.0]


def test_steps_and_simpy_events_share_one_clock():
    env = Environment()
    timeline = []

    def process(env):
        timeline.append(("process starts", env.now))
        yield env.timeout(2)
        timeline.append(("process wakes", env.now))
        env.steps.call_later(0.5, lambda name: timeline.append((name, env.now)), "step from process")

    env.process(process(env))
    env.steps.call_later(2, lambda name: timeline.append((name, env.now)), "step at 2")
    env.steps.call_later(1, lambda name: timeline.append((name, env.now)), "step at 1")
    env.steps.call_later(1, lambda name: timeline.append((name, env.now)), "second step at 1")
    env.steps.call_later(3, lambda name: timeline.append((name, env.now)), "step at 3")
    env.run(until=3)  # stops before anything due at 3
    assert timeline == [
        ("process starts", 0), ("step at 1", 1), ("second step at 1", 1),
        ("process wakes", 2),  # at equal times SimPy's events go first
        ("step at 2", 2), ("step from process", 2.5),
    ]
    assert env.peek() == 3
    env.run()
    assert timeline[-1] == ("step at 3", 3)


def test_buffer_cache_rewarms_with_queries_not_with_time():
    cache = BufferCache(cold_extra=30.0, evict_per_slow_call=0.002, warm_per_call=2e-5)
    assert cache.query_factor(1.0) == 1.0
    assert cache.query_factor(101.0) == 101.0  # a scanning query is slow whatever the cache
    for _ in range(3000):
        cache.query_factor(101.0)
    assert cache.hit_ratio < 0.01
    first = cache.query_factor(1.0)
    assert first == pytest.approx(31.0, rel=0.01)  # every read is a miss
    factors = [cache.query_factor(1.0) for _ in range(50_000)]
    assert factors == sorted(factors, reverse=True)
    # 50,000 ordinary queries close 1 - e^-1 of the gap
    assert cache.hit_ratio == pytest.approx(1 - math.exp(-1.0), abs=0.01)
