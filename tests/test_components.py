"""Component behaviour as exact timelines, SimPy style: [(what, env.now), ...].

Every test runs on both engines: SimPy's own Environment and the fast one (sim/core/engine.py).
"""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import pytest
from simpy import Interrupt

from sim.config import Scenario
from sim.core.rng import RandomStream
from sim.model.customers import make_customer_pool
from sim.model.endpoints import ENDPOINTS
from sim.model.failures import RequestFailure
from sim.model.faults import FaultSchedule
from sim.model.request import Request
from sim.model.resources.cache import BufferCache
from sim.model.resources.circuit_breaker import CLOSED, OPEN, CircuitBreaker
from sim.model.resources.cpu import Cpu
from sim.model.resources.db import DbConnectionPool, DbServer
from sim.model.resources.worker_pool import WorkerPool
from sim.model.storefront import Storefront
from sim.run.segment import ENGINES
from sim.telemetry.documents import DocumentFactory
from sim.telemetry.minutes import MinuteAggregator
from sim.telemetry.recorder import Recorder


@pytest.fixture(params=sorted(ENGINES))
def env(request):
    return ENGINES[request.param]()


def at(env, delay, fn, *args):
    """Run ``fn(*args)`` at ``env.now + delay`` (a tiny process)."""
    def proc():
        yield env.timeout(delay)
        fn(*args)
    env.process(proc())


def test_circuit_breaker_opens_waits_probes_and_closes(env):
    timeline = []
    breaker = CircuitBreaker(
        "gw", window_size=4, minimum_calls=4, failure_rate_threshold=50,
        slow_call_rate_threshold=100, slow_call_duration_s=10, wait_open_s=30,
        half_open_calls=2, env=env, backoff_multiplier=2.0, max_wait_open_s=100,
        on_transition=lambda old, new: timeline.append((f"{old} -> {new}", env.now)),
    )
    refused = []

    def calls():
        # three failures in four calls (75% >= 50%) opens it once the minimum is reached
        for failed in (True, False, True):
            yield env.timeout(1)
            assert breaker.try_acquire()
            breaker.record(0.1, failed)
        assert breaker.state == CLOSED  # only 3 calls: below minimum_calls
        yield env.timeout(1)
        breaker.try_acquire()
        breaker.record(0.1, True)  # t=4: opens, its timer runs 30 s
        yield env.timeout(16)
        refused.append((breaker.try_acquire(), env.now))  # still open at 20
        yield env.timeout(15)  # t=35: the timer made it half-open at 34
        assert breaker.try_acquire() and breaker.try_acquire()
        assert not breaker.try_acquire()  # no third probe
        breaker.record(0.1, True)
        breaker.record(0.1, True)  # both probes failed: open again, for 60 s this time
        yield env.timeout(61)  # t=96
        assert breaker.try_acquire() and breaker.try_acquire()
        breaker.record(0.1, False)
        breaker.record(0.1, False)

    env.process(calls())
    env.run()
    assert refused == [(False, 20)]
    assert timeline == [
        ("CLOSED -> OPEN", 4), ("OPEN -> HALF_OPEN", 34), ("HALF_OPEN -> OPEN", 35),
        ("OPEN -> HALF_OPEN", 95), ("HALF_OPEN -> CLOSED", 96),
    ]
    assert breaker.take_interval() == (CLOSED, 2) and breaker.take_interval() == (CLOSED, 0)


def test_circuit_breaker_reset_cancels_its_open_timer(env):
    breaker = CircuitBreaker("gw", window_size=1, minimum_calls=1, failure_rate_threshold=50,
                             slow_call_rate_threshold=100, slow_call_duration_s=5,
                             wait_open_s=10, half_open_calls=1, env=env)
    breaker.record(0.1, True)
    assert breaker.state == OPEN
    at(env, 5, breaker.reset)  # the JVM restarted: a fresh breaker
    env.run()
    assert breaker.state == CLOSED and env.now == 10  # the old timer fired and did nothing


def test_db_pool_throws_connection_timeout_into_the_waiter(env):
    pool = DbConnectionPool(env, max_size=1, timeout_s=5)
    timeline = []

    def client(name, arrive, hold):
        yield env.timeout(arrive)
        conn = pool.request()
        try:
            yield conn
            timeline.append((f"{name} connected", env.now))
            yield env.timeout(hold)
        except RequestFailure as exc:
            timeline.append((f"{name} {exc.kind}", env.now))
        finally:
            pool.release(conn)

    env.process(client("A", 0, 8))
    env.process(client("B", 1, 1))
    env.process(client("C", 7, 1))
    env.run()
    assert timeline == [("A connected", 0), ("B db_pool_timeout", 6), ("C connected", 8)]
    figures = pool.take_interval()
    assert (figures.timeouts, figures.in_use, figures.pending) == (1, 0, 0)
    assert pool.take_interval().timeouts == 0


def test_db_pool_interrupted_waiter_leaves_the_queue_and_reset_forgets_old_connections(env):
    pool = DbConnectionPool(env, max_size=1, timeout_s=5)
    first = pool.request()
    timeline = []

    def waiter():
        conn = pool.request()
        try:
            yield conn
        except Interrupt:
            timeline.append(("B gave up", env.now))
        finally:
            pool.release(conn)

    b = env.process(waiter())
    at(env, 1, b.interrupt)
    env.run()
    assert timeline == [("B gave up", 1)] and pool.pending == 0
    pool.reset()  # the JVM died
    second = pool.request()
    pool.release(first)  # A's connection died with the old JVM: must not free B's
    assert pool.active == 1 and second in pool.users


class _ZeroNormals:
    """A numpy-like generator whose normal draws are all 0: every lognormal draw is exactly
    its median, so the timeline is exact."""

    def random(self, n):
        return np.full(n, 0.5)

    def standard_normal(self, n):
        return np.zeros(n)

    def standard_exponential(self, n):
        return np.ones(n)


def _exact() -> RandomStream:
    return RandomStream(_ZeroNormals())


def test_db_server_limits_concurrency_fifo_and_announces_saturation(env):
    states = []
    server = DbServer(env, 2, _exact(), 1.0, 0.0, lambda: 1.0, BufferCache(30, 0.002, 2e-5),
                      on_state=lambda event, _: states.append((event, env.now)))
    done = []

    def query(name):
        yield server.query()
        done.append((name, env.now))

    for name in "ABC":
        env.process(query(name))
    env.run()
    assert done == [("A", 1.0), ("B", 1.0), ("C", 2.0)]
    assert states == [("db_server_saturated", 0), ("db_server_recovered", 1.0)]
    assert server.take_interval() == (0, 0, 2, 3, 3.0, 1.0)  # (active, queued, max, queries, s, cache)


def test_worker_pool_queues_then_rejects(env):
    pool = WorkerPool(env, max_threads=2, accept_queue=1)
    a, b, c = pool.request(), pool.request(), pool.request()
    with pytest.raises(RequestFailure, match="queue_rejected"):
        pool.request()
    assert pool.users == {a, b} and list(pool.queue) == [c]
    pool.release(a)
    assert pool.users == {b, c} and pool.rejected == 1


def test_cpu_bursts_queue_for_cores_and_gc_takes_them_all(env):
    cpu = Cpu(env, cores=2)
    timeline = []

    def burst(name, arrive, seconds):
        yield env.timeout(arrive)
        yield cpu.run(seconds)
        timeline.append((name, env.now))

    env.process(burst("A", 0, 1.0))
    env.process(burst("B", 0, 1.0))
    env.process(burst("C", 0, 1.0))  # waits for a core: 1..2
    env.process(burst("D", 2.5, 1.0))  # arrives during the GC pause 2.2..3.2
    at(env, 2.2, cpu.stop_the_world, 1.0)
    env.run(until=4)
    assert timeline == [("A", 1.0), ("B", 1.0), ("C", 2.0)]
    busy = cpu.take_interval().busy_share
    # 3 core-s of bursts, 2 core-s of GC, 0.8 core-s of D by t=4; over 2 cores x 4 s
    assert busy == pytest.approx((3 + 2 + 0.8) / 8)
    assert not cpu.queue  # D got a core when the pause ended
    env.run()
    assert timeline[-1] == ("D", pytest.approx(4.2))


def _single_instance_shop(env, docs_out, **storefront):
    scenario = Scenario.model_validate({
        "storefront": {"instances": 1, "shoppers": {"retry_probability": 0}, **storefront},
        "background_errors": {"error_rate_normal": 0},  # no everyday failures in this timeline
        "traffic": {"customers": 1},
    })

    class ExactStreams:
        def stream(self, name):
            return _exact()

    recorder = Recorder(env, scenario.storefront, DocumentFactory(0, 1), MinuteAggregator(0),
                        _exact(), docs_out.append, 0.0, 1e9, lambda s: "20260101")
    return Storefront(env, scenario, ExactStreams(), FaultSchedule([], lambda: env.now), recorder)


def _send(env, shop, endpoint, name, at_s):
    customer = make_customer_pool(1, 1)[0]

    def arrive():
        yield env.timeout(at_s)
        yield from shop.shoppers.visit(Request(endpoint, 0.0, customer, name))
    env.process(arrive())


def _transactions(docs):
    return [(d["session"]["id"], round(d["response_time_ms"] / 1000, 6), d["status"])
            for d in (x.as_dict() for x in docs) if d["event_type"] == "transaction"]


def test_gc_pause_stalls_cpu_work(env):
    docs = []
    shop = _single_instance_shop(env, docs, cpu_ms_scale=1000.0)  # app_ms_median in seconds
    inst = shop.instances[0]
    # the home page as one CPU step of exactly 0.1 s that allocates nothing
    def one_step(app, req):
        yield from app.work(req)
    probe = dataclasses.replace(ENDPOINTS["home"], app_ms_median=0.1, handler=one_step,
                                alloc_mb=0.0)
    _send(env, shop, probe, "r1", 0.0)
    at(env, 0.05, inst.cpu.stop_the_world, 0.5)  # stop-the-world 0.05-0.55
    _send(env, shop, probe, "r2", 0.2)
    _send(env, shop, probe, "r3", 0.6)
    env.run(until=5)
    # r1 was on its core when the pause began and finishes; r2's burst waits for the pause
    assert _transactions(docs) == [("r1", 0.1, "success"), ("r2", 0.45, "success"),
                                   ("r3", 0.1, "success")]
    assert [d.as_dict()["timing"]["gc_pause_ms"] for d in docs] == [0.0, 350.0, 0.0]


def test_checkout_holds_its_connection_through_a_slow_gateway_call(env):
    """The cascade itself: one checkout holds the only pooled connection across a slow
    payment call; reads that need a connection time out waiting for it, at exact times."""
    docs = []
    shop = _single_instance_shop(
        env, docs, cpu_ms_scale=1e-6,  # CPU work takes (next to) no time
        db_pool={"max_size": 1, "connection_timeout_ms": 2000},
        db_server={"query_ms_median": 10},
        inventory={"latency_ms_median": 50},
        payment_gateway={"latency_ms_median": 10_000, "read_timeout_ms": 30_000},
    )
    checkout, search = ENDPOINTS["checkout"], ENDPOINTS["search"]
    _send(env, shop, checkout, "order", 0.0)  # read 0-0.01, stock 0.01-0.06, INSERT -0.07
    _send(env, shop, search, "s1", 1.0)  # needs the connection the order holds
    _send(env, shop, search, "s2", 3.5)
    env.run(until=20)
    tx = {name: (rt, status) for name, rt, status in _transactions(docs)}
    # the order: read 10 ms, inventory 50 ms, INSERT 10 ms, the charge 10 s, UPDATE 10 ms
    assert tx["order"] == (pytest.approx(10.08, abs=1e-5), "success")
    assert tx["s1"] == (pytest.approx(2.0, abs=1e-5), "error")  # HikariCP gave up at 3.0
    assert tx["s2"] == (pytest.approx(2.0, abs=1e-5), "error")  # and at 5.5
    errors = [d.as_dict() for d in docs if d.as_dict()["event_type"] == "error"]
    assert [e["error"]["type"] for e in errors] == [
        "java.sql.SQLTransientConnectionException"] * 2
    timing = [d.as_dict()["timing"] for d in docs if d.as_dict().get("session", {}).get("id") == "order"]
    assert timing[0]["gateway_time_ms"] == pytest.approx(10_000, abs=1e-3)


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
