"""The storefront: a load balancer in front of app instances that share a DB and a gateway.

A request is a small mutable record walked through its endpoint's steps by callbacks on
the SimPy clock (see ``sim.engine``). Every wait it suffers comes from a resource it
contends for: a worker thread, a pooled DB connection, a DB server slot, a dependency's
latency, a GC pause of its JVM. Nothing here decides an outcome from the clock alone.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

from sim.config import Scenario
from sim.documents import Customer, DocumentFactory
from sim.endpoints import (
    APP,
    DB_READ,
    DB_WRITE,
    ENDPOINTS,
    GATEWAY,
    INVENTORY,
    RECOMMENDATIONS,
    Endpoint,
)
from sim.failures import BACKGROUND_KINDS, Failure, build_catalog
from sim.faults import FaultSchedule
from sim.groundtruth import MinuteAggregator
from sim.resources.cache import BufferCache
from sim.resources.circuit_breaker import CircuitBreaker
from sim.resources.db import DbConnectionPool, DbServer
from sim.resources.dependencies import DECLINED, FAILED, PaymentGateway, UpstreamService
from sim.resources.jvm_heap import FULL, JvmHeap
from sim.resources.worker_pool import WorkerPool
from sim.rng import RandomStreams
from sim.sinks.base import EncodedDoc
from sim.steps import StepQueue

CPU_SHARE_OF_APP_TIME = 0.3  # the rest of "app" time is I/O the thread waits on (cache, logs)
RETRY_BACKOFF_S = 0.2
LEAK_SCAN_S_PER_MB = 0.0004  # 0.4 s of extra work per GB leaked, on the leaky path
LEAK_SCAN_GARBAGE_PER_MB = 0.01  # MB of short-lived garbage per MB leaked, per call
# Shoppers who get a 5xx (or give up waiting) often try again: the retry storm that
# amplifies every incident, and the backlog that makes recovery take minutes.
CLIENT_RETRY_PROB = 0.6
CLIENT_MAX_RETRIES = 3
CLIENT_RETRY_DELAY_S = (2.0, 20.0)
CLIENT_RETRY_STATUS = frozenset({500, 502, 503, 504})
QUIET_BEFORE_TIMEOUT_EVENT_S = 120.0
LONG_GC_PAUSE_S = 1.5  # everyday full GCs of this heap take ~1.2 s
HEAP_PRESSURE_SHARE = 0.6  # live set share of the old generation that operators alert on
POOL_EXHAUSTED_WAITERS = 0.5  # waiters per pooled connection before we call it exhausted
# right after a stop-the-world pause every stalled thread asks for a connection at once;
# that momentary queue is the GC's doing, not an exhausted pool
GC_BURST_S = 2.0
# Postgres page cache: a cold query costs ~30x a cached one (disk reads on network storage); scans evict
# the working set, ordinary queries bring it back (1/50,000 of the gap per query).
DB_COLD_READ_EXTRA = 30.0
DB_EVICT_PER_SLOW_QUERY = 0.002
DB_WARM_PER_QUERY = 2e-5
# Inventory and recommendations keep their hot items cached the same way: whatever made
# them slow churned their cache, which refills with the calls they serve (~1/6,000 a call).
UPSTREAM_COLD_EXTRA = 25.0
UPSTREAM_EVICT_PER_SLOW_CALL = 0.002
UPSTREAM_WARM_PER_CALL = 1.7e-4
# The load balancer learns that an instance died only from its health checks: until the
# second failed probe it keeps sending requests there (connection refused, 502), and a
# restarted JVM gets traffic again after two passing probes.
HEALTH_CHECK_INTERVAL_S = 5.0
HEALTH_CHECK_FAILS_TO_REMOVE = 2
HEALTH_CHECK_PASSES_TO_ADD = 2
# A restarted JVM runs interpreted, unprofiled code with cold caches: app work costs up to
# (1 + JIT_COLD_EXTRA) times more and warms up as the JIT sees traffic (per request served).
JIT_COLD_EXTRA = 3.0
JIT_WARMUP_REQUESTS = 4000.0


class StateLog:
    """Resource state changes as the simulation saw them: (sim_s, component, event, detail)."""

    def __init__(self) -> None:
        self.entries: list[tuple[float, str, str, str]] = []

    def record(self, t: float, component: str, event: str, detail: str = "") -> None:
        self.entries.append((t, component, event, detail))


class Request:
    __slots__ = (
        "endpoint", "arrival", "customer", "session_id", "instance", "step", "queue_wait",
        "pool_wait", "db_time", "gateway_time", "upstream_time", "gc_wait", "mark", "done",
        "conn", "in_query", "attempts", "bg_kind", "bg_step", "gw_latency", "gw_outcome",
        "client_attempt", "leak_work_s",
    )

    def __init__(self, endpoint: Endpoint, arrival: float, customer: Customer, session_id: str):
        self.endpoint = endpoint
        self.arrival = arrival
        self.customer = customer
        self.session_id = session_id
        self.instance: AppInstance | None = None
        self.step = 0
        self.queue_wait = 0.0
        self.pool_wait = 0.0
        self.db_time = 0.0
        self.gateway_time = 0.0
        self.upstream_time = 0.0
        self.gc_wait = 0.0
        self.mark = 0.0
        self.done = False
        self.conn: int | None = None  # generation of the pool whose connection it holds
        self.in_query = False
        self.attempts = 0
        self.bg_kind: str | None = None
        self.bg_step = -1
        self.gw_latency = 0.0
        self.gw_outcome = 0
        self.client_attempt = 0
        self.leak_work_s = 0.0


class Storefront:
    """Builds and wires every component of one simulated segment."""

    def __init__(
        self,
        steps: StepQueue,
        scenario: Scenario,
        streams: RandomStreams,
        faults: FaultSchedule,
        docs: DocumentFactory,
        emit: Callable[[dict[str, Any] | EncodedDoc], None],
        emit_from: float,
        emit_until: float,
        day_label: Callable[[float], str],
    ):
        cfg = scenario.storefront
        self.steps = steps
        self.cfg = cfg
        self.docs = docs
        self.emit = emit
        self.emit_from = emit_from
        self.emit_until = emit_until
        self.day_label = day_label
        self.log = StateLog()
        self.minutes = MinuteAggregator(docs.origin_ms / 1000.0, faults.faults)
        self.client_rng = streams.stream("client-retries")
        self.last_timeout: dict[str, float] = {}
        self.db_saturated = False
        self.catalog: dict[str, Failure] = build_catalog(cfg)
        self.lb_timeout_s = cfg.lb_timeout_ms / 1000.0
        self.app_rng = streams.stream("app-time")
        self.db_rng = streams.stream("db-query")
        self.bg_rng = streams.stream("background-errors")
        self.order_rng = streams.stream("orders")
        self.db_slowdown = faults.multiplier("db_slow_queries")
        self.db_median_s = cfg.db_server.query_ms_median / 1000.0
        self.db_sigma = cfg.db_server.query_sigma
        self.db_server = DbServer(self.steps, cfg.db_server.max_active)
        self.db_cache = BufferCache(DB_COLD_READ_EXTRA, DB_EVICT_PER_SLOW_QUERY, DB_WARM_PER_QUERY)
        gw = cfg.payment_gateway
        self.gateway = PaymentGateway(
            streams.stream("payment-gateway"), gw.latency_ms_median / 1000.0, gw.latency_sigma,
            gw.read_timeout_ms / 1000.0, gw.decline_rate, gw.error_rate,
            faults.multiplier("payment_gateway_slowdown"),
            faults.additive("dependency_error_burst"),
        )
        self.upstreams = {
            name: UpstreamService(
                name, streams.stream(f"upstream:{name}"), ucfg.latency_ms_median / 1000.0,
                ucfg.latency_sigma, ucfg.timeout_ms / 1000.0,
                faults.multiplier("upstream_slowdown", name),
                BufferCache(UPSTREAM_COLD_EXTRA, UPSTREAM_EVICT_PER_SLOW_CALL,
                            UPSTREAM_WARM_PER_CALL),
                ucfg.retries,
            )
            for name, ucfg in (("inventory", cfg.inventory), ("recommendations", cfg.recommendations))
        }
        self.inventory = self.upstreams["inventory"]
        self.recommendations = self.upstreams["recommendations"]
        self.instances = [
            AppInstance(self, i, faults.additive("memory_leak", f"app-{i + 1:02d}"))
            for i in range(cfg.instances)
        ]
        self._rr = 0
        self.order_seq = 0
        self.gateway_latencies: list[float] = []
        self.gateway_calls = 0
        self.gateway_timeouts = 0
        self.gateway_failures = 0
        self._background = self._background_plan(scenario)

    # -- load balancer -------------------------------------------------------------------
    def arrive(self, request: Request) -> None:
        n = len(self.instances)
        now = self.steps.now
        for _ in range(n):
            inst = self.instances[self._rr]
            self._rr = (self._rr + 1) % n
            if inst.lb_in_at <= now < inst.lb_out_at:
                if inst.up:
                    inst.accept(request)
                else:  # dead, but its health checks have not failed enough yet
                    request.done = True
                    self.record(request, None, "upstream_refused", now)
                return
        request.done = True
        self.record(request, None, "no_instance", self.steps.now)

    # -- background failures --------------------------------------------------------------
    def _background_plan(self, scenario: Scenario) -> dict[str, list[tuple[float, str]]]:
        """Per endpoint: cumulative probabilities of each everyday failure kind."""
        bg = scenario.background_errors
        mix = scenario.traffic.endpoints.model_dump()
        total_mix = sum(mix.values())
        weights = {"validation": bg.validation_weight, "not_found": bg.not_found_weight,
                   "db_deadlock": bg.deadlock_weight, "internal": bg.internal_weight}
        wsum = sum(weights.values()) or 1.0
        target = bg.error_rate_normal / 100.0
        plan: dict[str, list[tuple[float, str]]] = {name: [] for name in ENDPOINTS}
        for kind, eps in BACKGROUND_KINDS.items():
            share = sum(mix[e] for e in eps) / total_mix
            if share <= 0:
                continue
            p = target * weights[kind] / wsum / share
            for e in eps:
                plan[e].append((p, kind))
        out: dict[str, list[tuple[float, str]]] = {}
        for name, items in plan.items():
            acc = 0.0
            cum = []
            for p, kind in items:
                acc += p
                cum.append((acc, kind))
            out[name] = cum
        return out

    def plan_background(self, request: Request) -> None:
        u = self.bg_rng.random()
        for threshold, kind in self._background[request.endpoint.name]:
            if u < threshold:
                request.bg_kind = kind
                steps = request.endpoint.steps
                if kind == "db_deadlock":
                    request.bg_step = steps.index(DB_WRITE) + 1
                elif kind == "not_found":
                    request.bg_step = steps.index(DB_READ) + 1
                else:
                    request.bg_step = 1
                return

    # -- documents ------------------------------------------------------------------------
    def record(self, request: Request, host: str | None, failure_kind: str | None,
               end: float, status_code: int = 200) -> None:
        """Emit the transaction (and error) documents of a finished request."""
        endpoint = request.endpoint
        response_s = end - request.arrival
        failure = None
        if response_s > self.lb_timeout_s:
            failure_kind = "lb_timeout"
            response_s = self.lb_timeout_s
            end = request.arrival + response_s
        if failure_kind is not None:
            failure = self.catalog[failure_kind]
            status_code = failure.status_code
        elif endpoint.method == "POST" and endpoint.name == "checkout":
            status_code = 201
        retried = self._maybe_retry(request, status_code)
        if not (self.emit_from <= request.arrival < self.emit_until):
            return
        docs = self.docs
        ids = docs.new_ids()
        order = b""
        failed_amount = None
        if endpoint.name == "checkout":
            self.order_seq += 1
            payment_status = ("captured" if failure is None else
                              "declined" if failure_kind == "card_declined" else "failed")
            order, amount = docs.order(self.order_rng.random, request.customer, self.order_seq,
                                       self.day_label(request.arrival), payment_status)
            if payment_status == "failed" and not retried:
                # the shopper gave up: this order is lost (a retried one may still succeed)
                failed_amount = amount
        host_name = host or "lb-01"
        response_ms = response_s * 1000.0
        self.minutes.add(request.arrival, endpoint.name, host_name, response_ms, failure_kind,
                         failed_amount)
        self.emit(docs.transaction(request, ids, request.customer, endpoint, host_name,
                                   status_code, response_ms, order))
        if failure is not None:
            self.emit(docs.error(end, ids, endpoint, host_name, failure, status_code))


    def _maybe_retry(self, request: Request, status_code: int) -> bool:
        """The shopper may send the same request again after a short, random pause."""
        if status_code not in CLIENT_RETRY_STATUS or request.client_attempt >= CLIENT_MAX_RETRIES:
            return False
        rng = self.client_rng
        if rng.random() >= CLIENT_RETRY_PROB:
            return False
        lo, hi = CLIENT_RETRY_DELAY_S
        delay = lo + (hi - lo) * rng.random()
        retry = Request(request.endpoint, 0.0, request.customer, request.session_id)
        retry.client_attempt = request.client_attempt + 1
        self.steps.call_later(delay, self._retry_arrives, retry)
        return True

    def _retry_arrives(self, retry: Request) -> None:
        retry.arrival = self.steps.now
        self.arrive(retry)

    def dependency_timeout(self, name: str) -> None:
        """Log the first timeout of a dependency after a quiet spell (a state change)."""
        now = self.steps.now
        last = self.last_timeout.get(name)
        self.last_timeout[name] = now
        if last is None or now - last > QUIET_BEFORE_TIMEOUT_EVENT_S:
            event = "gateway_timeouts_started" if name == "payment-gateway" else \
                "upstream_timeouts_started"
            self.log.record(now, name, event, f"{name} calls timing out")

    def check_db_server(self) -> None:
        """Log the shared database running out of concurrent query slots, and recovering."""
        db = self.db_server
        if db.queue and not self.db_saturated:
            self.db_saturated = True
            self.log.record(self.steps.now, "db-01", "db_server_saturated",
                            f"{db.active}/{db.max_active} active, {len(db.queue)} queued")
        elif self.db_saturated and not db.queue and db.active < 0.8 * db.max_active:
            self.db_saturated = False
            self.log.record(self.steps.now, "db-01", "db_server_recovered",
                            f"{db.active}/{db.max_active} active")


class AppInstance:
    """One JVM: worker threads, a DB connection pool, a heap, a breaker around the gateway."""

    def __init__(self, shop: Storefront, index: int, leak_mb: Callable[[], float]):
        cfg = shop.cfg
        self.shop = shop
        self.steps = shop.steps
        self.name = name = f"app-{index + 1:02d}"
        self.leak_mb = leak_mb
        self.up = True
        self.paused_until = 0.0
        self.inflight: set[Request] = set()
        self.workers = WorkerPool(cfg.worker_threads, cfg.accept_queue, self._start)
        self.db_pool = DbConnectionPool(
            self.steps, name, cfg.db_pool.max_size, cfg.db_pool.connection_timeout_ms / 1000.0)
        h = cfg.heap
        self.heap = JvmHeap(
            max_mb=h.max_mb, young_mb=h.young_mb, baseline_live_mb=h.baseline_live_mb,
            promotion_ratio=h.promotion_ratio, minor_pause_s=h.minor_pause_ms / 1000.0,
            full_gc_threshold=h.full_gc_threshold,
            full_pause_s_per_gb=h.full_pause_ms_per_gb / 1000.0, on_gc=self._on_gc,
        )
        self.alloc_scale = h.alloc_kb_per_request / 1800.0
        b = cfg.circuit_breaker
        self.breaker = CircuitBreaker(
            f"{name}/paymentGateway", window_size=b.window_size, minimum_calls=b.minimum_calls,
            failure_rate_threshold=b.failure_rate_threshold,
            slow_call_rate_threshold=b.slow_call_rate_threshold,
            slow_call_duration_s=b.slow_call_duration_ms / 1000.0,
            wait_open_s=b.wait_open_ms / 1000.0, half_open_calls=b.half_open_calls,
            backoff_multiplier=b.backoff_multiplier, max_wait_open_s=b.max_wait_open_ms / 1000.0,
            enabled=b.enabled, clock=lambda: self.steps.now,
            on_transition=self._on_breaker,
        )
        self.restart_s = h.restart_seconds
        # the load balancer's view: in rotation from lb_in_at until lb_out_at
        self.lb_in_at = 0.0
        self.lb_out_at = math.inf
        self.probe_phase_s = HEALTH_CHECK_INTERVAL_S * (index * 0.37 % 1.0)  # probes not in lockstep
        # the JIT's compiled code is a working set like any cache: lost on restart, rebuilt by use
        self.jit = BufferCache(JIT_COLD_EXTRA, 0.0, 1.0 / JIT_WARMUP_REQUESTS)
        self.jit_factor = 1.0  # app-time factor of the request being started
        self.app_scale = cfg.cpu_ms_scale / 1000.0
        self.saturated = False
        self.pool_exhausted = False
        self.heap_pressure = False
        # per-interval counters, read and reset by the metrics sampler
        self.m_requests = 0
        self.m_errors = 0
        self.m_latencies: list[float] = []
        self.m_cpu_s = 0.0
        self.m_gc_pause_s = 0.0
        self.m_gc_count = 0
        self.m_gc_full = 0
        self.restarts = 0

    # -- entry and exit -------------------------------------------------------------------
    def accept(self, request: Request) -> None:
        request.instance = self
        self.inflight.add(request)
        if not self.workers.submit(request):
            self._finish(request, "queue_rejected", holds_thread=False)
            return
        if self.workers.queue and not self.saturated:
            self.saturated = True
            self.shop.log.record(self.steps.now, self.name, "thread_pool_saturated",
                                 f"{self.workers.active}/{self.workers.max_threads} busy")

    def _start(self, request: Request) -> None:
        now = self.steps.now
        request.queue_wait = now - request.arrival
        if request.queue_wait >= self.shop.lb_timeout_s:
            # the client is long gone; the thread drops it at once
            self._finish(request, "lb_timeout")
            return
        self.shop.plan_background(request)
        if self.jit_factor != 1.0:  # still warming up after a restart
            self.jit_factor = self.jit.query_factor(1.0)
        alloc = request.endpoint.alloc_mb * self.alloc_scale
        leak = 0.0
        if request.endpoint.leaky:
            leak = self.leak_mb()
            leaked = self.heap.leaked_mb
            if leaked:
                # the leaked structure is walked on every call of the leaky path (a growing
                # audit list scanned for duplicates): work and garbage grow with what leaked
                request.leak_work_s = leaked * LEAK_SCAN_S_PER_MB
                alloc += leaked * LEAK_SCAN_GARBAGE_PER_MB
        if self.heap.allocate(alloc, leak):
            self._crash(request)
            return
        self._advance(request)

    def _finish(self, request: Request, failure_kind: str | None, holds_thread: bool = True) -> None:
        request.done = True
        self.inflight.discard(request)
        if request.conn is not None and not request.in_query:
            self._release_connection(request)
        now = self.steps.now
        self.m_requests += 1
        if failure_kind is not None:
            self.m_errors += 1
        self.m_latencies.append(now - request.arrival)
        self.shop.record(request, self.name, failure_kind, now)
        if holds_thread:
            self.workers.release()
            if self.saturated and not self.workers.queue and \
                    self.workers.active < 0.8 * self.workers.max_threads:
                self.saturated = False
                self.shop.log.record(now, self.name, "thread_pool_recovered",
                                     f"{self.workers.active}/{self.workers.max_threads} busy")

    # -- stepping -------------------------------------------------------------------------
    def _after(self, delay: float, request: Request) -> None:
        self.steps.call_later(delay, self._resume, request)

    def _resume(self, request: Request) -> None:
        if request.done:
            return
        now = self.steps.now
        if self.paused_until > now:
            # stop-the-world: the thread cannot run until the collection ends
            request.gc_wait += self.paused_until - now
            self._after(self.paused_until - now, request)
            return
        self._advance(request)

    def _advance(self, request: Request) -> None:
        """Run the request's next steps. Steps that touch nothing shared (app time, calls to
        upstream services) are summed into one wait; a shared step (DB, gateway) starts at
        its own simulated time, since what it finds there depends on everybody else."""
        steps = request.endpoint.steps
        n = len(steps)
        i = request.step
        delay = 0.0
        shop = self.shop
        while True:
            if i >= n or (request.bg_step == i and request.bg_kind is not None):
                if delay > 0.0:
                    request.step = i
                    self._after(delay, request)
                else:
                    self._finish(request, request.bg_kind if request.bg_step == i else None)
                return
            step = steps[i]
            if step == APP:
                t = shop.app_rng.lognormal(request.endpoint.app_ms_median, 0.45) * self.app_scale
                if self.jit_factor != 1.0:
                    t *= self.jit_factor
                if request.leak_work_s:
                    t += request.leak_work_s
                    request.leak_work_s = 0.0
                self.m_cpu_s += t * CPU_SHARE_OF_APP_TIME
                delay += t
                i += 1
                continue
            if step in (INVENTORY, RECOMMENDATIONS):
                upstream = shop.inventory if step == INVENTORY else shop.recommendations
                latency = upstream.call_latency()
                i += 1
                if latency >= upstream.timeout_s:
                    # read timed out: an idempotent GET, tried again before giving up
                    shop.dependency_timeout(upstream.name)
                    spent = upstream.timeout_s
                    retries = upstream.retries
                    while retries and latency >= upstream.timeout_s:
                        retries -= 1
                        latency = upstream.call_latency()
                        spent += min(latency, upstream.timeout_s)
                    if latency >= upstream.timeout_s:
                        request.bg_kind = upstream.timeout_kind
                        request.bg_step = i
                    latency = spent
                request.upstream_time += latency
                delay += latency
                continue
            if delay > 0.0:
                request.step = i
                self._after(delay, request)
                return
            request.step = i + 1
            if step == GATEWAY:
                self._charge(request)
                return
            request.mark = self.steps.now
            if request.conn is not None:  # inside a transaction: reuse its connection
                self._query(request)
                return
            pool = self.db_pool
            pool.acquire(request, self._db_connected, self._db_pool_timeout)
            if pool.pending >= POOL_EXHAUSTED_WAITERS * pool.max_size and not self.pool_exhausted \
                    and self.steps.now - self.paused_until > GC_BURST_S:
                self.pool_exhausted = True
                shop.log.record(self.steps.now, self.name, "db_pool_exhausted",
                                f"{pool.active}/{pool.max_size} in use, {pool.pending} waiting")
            return

    # -- database -------------------------------------------------------------------------
    def _db_connected(self, request: Request, waited: float) -> None:
        request.pool_wait += waited
        request.conn = self.db_pool.generation
        request.mark = self.steps.now
        self._query(request)

    def _query(self, request: Request) -> None:
        shop = self.shop
        request.in_query = True
        duration = shop.db_rng.lognormal(
            shop.db_median_s * shop.db_cache.query_factor(shop.db_slowdown()), shop.db_sigma)
        shop.db_server.execute(duration, request, self._db_done)
        if shop.db_server.queue or shop.db_saturated:
            shop.check_db_server()

    def _release_connection(self, request: Request) -> None:
        pool = self.db_pool
        conn = request.conn
        assert conn is not None  # only called for a request that holds a connection
        pool.release(conn)
        request.conn = None
        if self.pool_exhausted and not pool.pending and pool.active < 0.8 * pool.max_size:
            self.pool_exhausted = False
            self.shop.log.record(self.steps.now, self.name, "db_pool_recovered",
                                 f"{pool.active}/{pool.max_size} in use")

    def _db_done(self, request: Request) -> None:
        request.in_query = False
        span = request.endpoint.transaction
        # @Transactional: the connection stays with the request from the span's first query
        # to its last, whatever happens in between (a slow payment call included)
        if request.done or span is None or not span[0] <= request.step - 1 < span[1]:
            self._release_connection(request)
        if request.done:
            return
        request.db_time += self.steps.now - request.mark
        self._resume(request)

    def _db_pool_timeout(self, request: Request, waited: float) -> None:
        request.pool_wait += waited
        if not request.done:
            self._finish(request, "db_pool_timeout")

    # -- payment --------------------------------------------------------------------------
    def _charge(self, request: Request) -> None:
        if not self.breaker.try_acquire():
            request.gateway_time += 0.001
            self._finish(request, "breaker_open")
            return
        shop = self.shop
        latency, outcome = shop.gateway.call()
        shop.gateway_calls += 1
        request.mark = self.steps.now
        if latency >= shop.gateway.timeout_s:
            request.gw_latency = shop.gateway.timeout_s
            request.gw_outcome = -1
        else:
            request.gw_latency = latency
            request.gw_outcome = outcome
        shop.gateway_latencies.append(request.gw_latency)
        self.steps.call_later(request.gw_latency, self._gateway_answered, request)

    def _gateway_answered(self, request: Request) -> None:
        shop = self.shop
        outcome = request.gw_outcome
        timed_out = outcome == -1
        failed = timed_out or outcome == FAILED
        self.breaker.record(request.gw_latency, failed)
        if timed_out:
            shop.gateway_timeouts += 1
            shop.dependency_timeout("payment-gateway")
        elif outcome == FAILED:
            shop.gateway_failures += 1
        if request.done:
            return
        request.gateway_time += self.steps.now - request.mark
        if failed:
            if not timed_out and request.attempts < shop.cfg.payment_gateway.max_retries:
                request.attempts += 1
                self.steps.call_later(RETRY_BACKOFF_S * request.attempts, self._retry_charge,
                                    request)
                return
            self._finish(request, "gateway_timeout" if timed_out else "gateway_error")
            return
        if outcome == DECLINED:
            self._finish(request, "card_declined")
            return
        self._resume(request)

    def _retry_charge(self, request: Request) -> None:
        if not request.done:
            self._charge(request)

    # -- JVM ------------------------------------------------------------------------------
    def _on_gc(self, kind: str, pause_s: float) -> None:
        now = self.steps.now
        self.paused_until = max(self.paused_until, now) + pause_s
        self.m_gc_pause_s += pause_s
        self.m_gc_count += 1
        self.m_cpu_s += pause_s * self.shop.cfg.cpu_cores
        if kind == FULL:
            self.m_gc_full += 1
            if not self.heap_pressure and \
                    self.heap.live_mb >= HEAP_PRESSURE_SHARE * self.heap.old_max_mb:
                self.heap_pressure = True
                self.shop.log.record(now, self.name, "heap_pressure",
                                     f"live set {self.heap.live_mb:.0f} MB after full GC")
            if pause_s >= LONG_GC_PAUSE_S:
                self.shop.log.record(now, self.name, "long_gc_pause",
                                     f"full GC {pause_s * 1000:.0f} ms, live "
                                     f"{self.heap.live_mb:.0f} MB")

    def _crash(self, culprit: Request) -> None:
        """OutOfMemoryError: the JVM exits (ExitOnOutOfMemoryError); in-flight work is lost."""
        now = self.steps.now
        self.shop.log.record(now, self.name, "out_of_memory",
                             f"live set {self.heap.live_mb:.0f} MB of {self.heap.old_max_mb:.0f} MB")
        self.up = False
        self.restarts += 1
        self._finish(culprit, "oom", holds_thread=False)
        for request in sorted(self.inflight, key=lambda r: r.arrival):
            self._finish(request, "instance_crash", holds_thread=False)
        self.inflight.clear()
        self.workers.reset()
        self.db_pool.reset()
        self.heap.reset()
        self.paused_until = now
        self.lb_out_at = self._probe_after(now, HEALTH_CHECK_FAILS_TO_REMOVE)
        self.steps.call_later(self.restart_s, self._restarted, None)

    def _probe_after(self, t: float, probes: int) -> float:
        """When the ``probes``-th health check after ``t`` runs (checks are on a fixed grid)."""
        k = math.floor((t - self.probe_phase_s) / HEALTH_CHECK_INTERVAL_S) + probes
        return self.probe_phase_s + k * HEALTH_CHECK_INTERVAL_S

    def _restarted(self, _: None) -> None:
        self.up = True
        self.saturated = False
        self.pool_exhausted = False
        self.heap_pressure = False
        self.breaker.reset()
        now = self.steps.now
        self.lb_in_at = self._probe_after(now, HEALTH_CHECK_PASSES_TO_ADD)
        self.lb_out_at = math.inf
        self.jit.chill()
        self.jit_factor = 1.0 + JIT_COLD_EXTRA
        self.shop.log.record(now, self.name, "instance_restarted",
                             "JVM up, back in rotation after its health checks pass")

    def _on_breaker(self, name: str, old: str, new: str, t: float) -> None:
        self.shop.log.record(t, self.name, f"circuit_breaker_{new.lower()}", f"{old} -> {new}")

