"""AppInstance: one JVM behind the load balancer.

It owns what a JVM owns: worker threads, a HikariCP pool, CPU cores, a heap, a circuit
breaker around the payment gateway and its JIT's compiled code. ``handle`` is the process
of one request on it; the endpoint handlers (``sim.model.endpoints``) call the steps below. An
OutOfMemoryError kills the JVM: every request in flight gets ``simpy.Interrupt`` thrown
into it, and a restart process brings the JVM back, cold.
"""

from __future__ import annotations

from collections.abc import Callable, Generator
from typing import TYPE_CHECKING, Any, NamedTuple

from simpy import Interrupt

from sim.config import (
    ALLOC_KB_REFERENCE,
    BREAKER_REFUSAL_S,
    DEPLOY_WARMUP_RPS,
    BreakerConfig,
    HeapConfig,
    StorefrontConfig,
)
from sim.core.rng import RandomStream
from sim.model.failures import RequestFailure
from sim.model.request import (
    AFTER_READ,
    AFTER_WORK,
    AFTER_WRITE,
    STEP_BREAKER,
    STEP_CHARGE,
    STEP_FAILED,
    STEP_GC,
    STEP_INVENTORY,
    STEP_OK,
    STEP_POOL_WAIT,
    STEP_READ,
    STEP_RECOMMENDATIONS,
    STEP_TRANSACTION,
    STEP_WRITE,
    Request,
)
from sim.model.resources.cache import BufferCache
from sim.model.resources.circuit_breaker import BreakerFigures, CircuitBreaker
from sim.model.resources.cpu import Cpu, CpuFigures
from sim.model.resources.db import ConnectionPoolFigures, DbConnectionPool
from sim.model.resources.dependencies import DECLINED, FAILED, OK, TIMED_OUT, PaymentGateway, UpstreamService
from sim.model.resources.jvm_heap import OOM, HeapFigures, JvmHeap
from sim.model.resources.worker_pool import ThreadPoolFigures, WorkerPool

if TYPE_CHECKING:
    from sim.model.storefront import Backends

Process = Generator[Any, Any, None]


class Build(NamedTuple):
    """The code an instance runs: its version, and the leak a bug in it adds per call of
    the leaky path (MB; 0.0 for a sound build)."""

    version: str
    leak_mb: float = 0.0


class InstanceFigures(NamedTuple):
    """What one instance reports each interval: its requests and each of its resources'
    figures (``take_interval`` of each)."""

    name: str
    up: bool
    version: str
    served: int
    errors: int
    latencies: list[float]  # response times
    cpu: CpuFigures
    heap: HeapFigures
    threads: ThreadPoolFigures
    db_pool: ConnectionPoolFigures
    breaker: BreakerFigures


def jvm_heap(h: HeapConfig, on_gc: Callable[[str, float], None],
             on_state: Callable[[str, str], None]) -> JvmHeap:
    """A JVM's heap from its settings (pauses given in ms, in seconds here)."""
    return JvmHeap(
        max_mb=h.max_mb, young_mb=h.young_mb, baseline_live_mb=h.baseline_live_mb,
        promotion_ratio=h.promotion_ratio, minor_pause_s=h.minor_pause_ms / 1000.0,
        full_gc_threshold=h.full_gc_threshold,
        full_pause_s_per_gb=h.full_pause_ms_per_gb / 1000.0, on_gc=on_gc, on_state=on_state,
    )


def circuit_breaker(name: str, b: BreakerConfig, env: Any,
                    on_transition: Callable[[str, str], None]) -> CircuitBreaker:
    """The breaker around the gateway from its settings (durations given in ms)."""
    return CircuitBreaker(
        name, window_size=b.window_size, minimum_calls=b.minimum_calls,
        failure_rate_threshold=b.failure_rate_threshold,
        slow_call_rate_threshold=b.slow_call_rate_threshold,
        slow_call_duration_s=b.slow_call_duration_ms / 1000.0,
        wait_open_s=b.wait_open_ms / 1000.0, half_open_calls=b.half_open_calls,
        backoff_multiplier=b.backoff_multiplier, max_wait_open_s=b.max_wait_open_ms / 1000.0,
        enabled=b.enabled, env=env, on_transition=on_transition,
    )


class AppInstance:
    def __init__(self, env: Any, index: int, cfg: StorefrontConfig, backends: Backends,
                 everyday_failure: Callable[[Request], None], leak_mb: Callable[[], float],
                 app_rng: RandomStream, on_state: Callable[[str, str, str], None],
                 build: Build, versions: dict[str, str]) -> None:
        """``versions``: host -> the version it runs, shared by the fleet (the documents read it)."""
        self.env = env
        self.index = index
        self.name = name = f"app-{index + 1:02d}"
        self.cfg = cfg
        self.backends = backends
        self.db = backends.db
        self.gateway: PaymentGateway = backends.gateway
        self.inventory: UpstreamService = backends.inventory
        self.recommendations: UpstreamService = backends.recommendations
        self.flags = backends.flags
        self.versions = versions
        self.everyday_failure = everyday_failure
        self.leak_mb = leak_mb
        self.app_rng = app_rng
        self.announce = on_state

        def my_state(event: str, detail: str) -> None:
            on_state(name, event, detail)

        self.my_state = my_state
        self.up = True
        self.ready = True  # its readiness probe: False while it shuts down gracefully
        self.restarts = 0
        self.requests: dict[Any, Request] = {}  # in flight: process -> request
        self.workers = WorkerPool(env, cfg.worker_threads, cfg.accept_queue, my_state)
        self.db_pool = DbConnectionPool(env, cfg.db_pool.max_size,
                                        cfg.db_pool.connection_timeout_ms / 1000.0, my_state)
        self.start_jvm(cfg, build)
        self.jit_factor = 1.0  # CPU time factor while the JIT warms up
        self.lb_timeout_s = cfg.lb_timeout_ms / 1000.0
        self.tracing = False  # record every request's steps (Request.spans) for its trace
        # per-interval figures, taken by the metrics sampler
        self.served = 0
        self.errors = 0
        self.latencies: list[float] = []

    def start_jvm(self, cfg: StorefrontConfig, build: Build) -> None:
        """What a JVM reads from its settings when it starts (a push of any of these takes
        a restart): its cores, heap, breaker, JIT and the gateway client's retries; and the
        build it runs."""
        name = self.name
        self.build = build
        self.versions[name] = build.version
        announce = self.announce
        self.cpu = Cpu(self.env, cfg.cpu_cores, self.my_state)
        self.heap = jvm_heap(cfg.heap, self._collect, self.my_state)
        self.alloc_scale = cfg.heap.alloc_kb_per_request / ALLOC_KB_REFERENCE
        self.leak_scan_s_per_mb = cfg.heap.leak_scan_ms_per_mb / 1000.0
        self.breaker = circuit_breaker(
            f"{name}/paymentGateway", cfg.circuit_breaker, self.env,
            lambda old, new: announce(name, f"circuit_breaker_{new.lower()}", f"{old} -> {new}"))
        # the JIT's compiled code is a working set like any cache: lost on restart, rebuilt by use
        self.jit = BufferCache(cfg.jit.cold_extra, 0.0, 1.0 / cfg.jit.warmup_requests)
        self.cpu_scale = cfg.cpu_ms_scale / 1000.0
        self.cpu_sigma = cfg.cpu_sigma
        self.retry_backoff_s = cfg.payment_gateway.retry_backoff_ms / 1000.0
        self.max_charge_retries = cfg.payment_gateway.max_retries

    # -- one request --------------------------------------------------------------------
    def handle(self, req: Request) -> Generator[Any, Any, str | None]:
        """A request's life on this JVM: a worker thread, the endpoint's code; returns the
        failure it met (None: it succeeded)."""
        env = self.env
        me = env.active_process
        self.requests[me] = req
        if self.tracing:
            req.spans = []
        failure: str | None = None
        try:
            thread = self.workers.request()
            try:
                if not thread.triggered:
                    yield thread  # every thread busy: wait in the accept queue
                self.accept(req)
                yield from req.endpoint.handler(self, req)
            finally:
                self.workers.release(thread)
        except RequestFailure as exc:
            failure = exc.kind
        except Interrupt:
            failure = "instance_crash"  # the JVM died under this request
        del self.requests[me]
        self.served += 1
        if failure is not None:
            self.errors += 1
        self.latencies.append(env.now - req.arrival)
        return failure

    def accept(self, req: Request) -> None:
        """A thread took the request: account its allocations (which may run a GC, or run
        the heap out and kill the JVM) and draw the everyday failure it will meet."""
        now = self.env.now
        req.queue_wait = now - req.arrival
        if req.queue_wait >= self.lb_timeout_s:
            raise RequestFailure("lb_timeout")  # the client is long gone; dropped at once
        self.everyday_failure(req)
        if self.jit_factor != 1.0:
            self.jit_factor = self.jit.query_factor(1.0)
        endpoint = req.endpoint
        alloc = endpoint.alloc_mb * self.alloc_scale
        leak = 0.0
        if endpoint.leaky:
            leak = self.leak_mb() + self.build.leak_mb
            leaked = self.heap.leaked_mb
            if leaked:
                # the leaked structure is walked on every call of the leaky path
                req.extra_cpu_s = leaked * self.leak_scan_s_per_mb
                alloc += leaked * self.cfg.heap.leak_scan_garbage_ratio
        if self.heap.allocate(alloc, leak):
            self.crash()
            raise RequestFailure("oom")

    # -- the steps handlers are made of ---------------------------------------------------
    def work(self, req: Request) -> Process:
        """App code on a core. Waits behind other bursts when every core is busy, and
        behind a stop-the-world GC pause."""
        env = self.env
        cpu = self.cpu
        seconds = self.app_rng.lognormal(req.endpoint.app_ms_median, self.cpu_sigma) * self.cpu_scale \
            * self.jit_factor + req.extra_cpu_s
        req.extra_cpu_s = 0.0
        start = env.now
        stalled = cpu.paused_until - start
        yield cpu.run(seconds)
        if stalled > 0.0:
            waited = min(stalled, env.now - start - seconds)
            req.gc_wait += waited
            spans = req.spans
            if spans is not None and waited > 0.0:
                spans.append((STEP_GC, start, start + waited, STEP_OK))
        if req.fails_at == AFTER_WORK:
            raise RequestFailure(req.everyday_failure)

    def connect(self, req: Request, connection: Any) -> Process:
        """Wait for a pooled connection (HikariCP throws after connection_timeout)."""
        if connection.triggered:
            return  # a free connection, at once
        start = self.env.now
        outcome = STEP_FAILED  # HikariCP's timeout, or the JVM died while it waited
        try:
            yield connection
            outcome = STEP_OK
        finally:
            req.pool_wait += self.env.now - start
            spans = req.spans
            if spans is not None:
                spans.append((STEP_POOL_WAIT, start, self.env.now, outcome))

    def query(self, req: Request) -> Process:
        """One statement on the shared database."""
        start = self.env.now
        yield self.db.query()
        req.db_time += self.env.now - start
        spans = req.spans
        if spans is not None:
            spans.append((STEP_WRITE, start, self.env.now,
                          STEP_FAILED if req.fails_at == AFTER_WRITE else STEP_OK))

    def read(self, req: Request) -> Process:
        """A read in its own short transaction: borrow a connection, query, give it back."""
        env = self.env
        connection = self.db_pool.request()
        try:
            if not connection.triggered:
                yield from self.connect(req, connection)
            start = env.now
            yield self.db.query()
            req.db_time += env.now - start
            spans = req.spans
            if spans is not None:
                spans.append((STEP_READ, start, env.now, STEP_OK))
        finally:
            self.db_pool.release(connection)
        if req.fails_at == AFTER_READ:
            raise RequestFailure(req.everyday_failure)

    def write(self, req: Request, connection: Any = None) -> Process:
        """A write: on the caller's transaction's connection, or on one of its own."""
        if connection is not None:
            yield from self.query(req)
        else:
            connection = self.db_pool.request()
            try:
                yield from self.connect(req, connection)
                yield from self.query(req)
            finally:
                self.db_pool.release(connection)
        if req.fails_at == AFTER_WRITE:
            raise RequestFailure(req.everyday_failure)

    def committed(self, req: Request, began: float) -> None:
        """A transaction gave its connection back (asked for at ``began``): its span, when
        the request is traced (the connection is held across everything inside it)."""
        if req.spans is not None:
            req.spans.append((STEP_TRANSACTION, began, self.env.now, STEP_OK))

    def call(self, req: Request, upstream: UpstreamService) -> Process:
        """An idempotent GET to an internal service: a read timeout is tried again before
        the request fails."""
        env = self.env
        start = env.now
        spans = req.spans
        step = STEP_INVENTORY if upstream is self.inventory else STEP_RECOMMENDATIONS
        try:
            for _ in range(upstream.retries + 1):
                began = env.now
                outcome = yield upstream.get()
                if spans is not None:
                    spans.append((step, began, env.now, outcome))
                if outcome == OK:
                    return
            raise RequestFailure(upstream.timeout_kind)
        finally:
            req.upstream_time += self.env.now - start

    def charge(self, req: Request) -> Process:
        """PayGateClient.charge through the circuit breaker. A charge is not idempotent: a
        read timeout fails the order at once; fast 5xx answers are retried."""
        env = self.env
        breaker = self.breaker
        for attempt in range(self.max_charge_retries + 1):
            if attempt:
                yield env.timeout(self.retry_backoff_s * attempt)
            if not breaker.try_acquire():
                req.gateway_time += BREAKER_REFUSAL_S
                if req.spans is not None:
                    req.spans.append((STEP_BREAKER, env.now, env.now, STEP_FAILED))
                raise RequestFailure("breaker_open")
            start = env.now
            outcome = yield self.gateway.charge()
            took = env.now - start
            req.gateway_time += took
            if req.spans is not None:
                req.spans.append((STEP_CHARGE, start, env.now, outcome))
            breaker.record(took, outcome in (FAILED, TIMED_OUT))
            if outcome == OK:
                return
            if outcome == DECLINED:
                raise RequestFailure("card_declined")
            if outcome == TIMED_OUT:
                raise RequestFailure("gateway_timeout")
        raise RequestFailure("gateway_error")

    # -- the JVM ------------------------------------------------------------------------
    def _collect(self, kind: str, pause_s: float) -> None:
        if kind != OOM:
            self.cpu.stop_the_world(pause_s)

    def crash(self) -> None:
        """OutOfMemoryError: the JVM exits (ExitOnOutOfMemoryError); in-flight work is lost."""
        env = self.env
        self.announce(self.name, "out_of_memory", f"live set {self.heap.live_mb:.0f} MB of "
                                                  f"{self.heap.old_max_mb:.0f} MB")
        self.up = False
        self.restarts += 1
        me = env.active_process
        for process in self.requests:
            if process is not me:
                process.interrupt("OutOfMemoryError")
        self.workers.reset()
        self.db_pool.reset()
        self.cpu.reset()
        self.heap.reset()
        env.process(self.restart())

    def restart(self) -> Process:
        """The orchestrator starts a fresh JVM: empty pools, a closed breaker, a cold JIT."""
        yield self.env.timeout(self.cfg.heap.restart_seconds)
        self.up = True
        self.breaker.reset()
        self.jit.chill()
        self.jit_factor = 1.0 + self.cfg.jit.cold_extra
        self.announce(self.name, "instance_restarted",
                      "JVM up, back in rotation after its health checks pass")

    def push_live(self, cfg: StorefrontConfig) -> None:
        """A config push reached this JVM: the settings its components take at runtime
        (HikariCP's maximumPoolSize, Tomcat's maxThreads and acceptCount) apply now."""
        self.cfg = cfg
        self.workers.resize(cfg.worker_threads, cfg.accept_queue)
        self.db_pool.resize(cfg.db_pool.max_size)

    def graceful_restart(self, cfg: StorefrontConfig, build: Build, why: str,
                         warmup_requests: int = 0) -> Process:
        """A restart to take settings a JVM reads only at start, or a new build (Spring's
        graceful shutdown): its readiness fails, the load balancer takes it out after its
        health checks, the requests in flight finish (at most the load balancer's timeout),
        then the JVM is down for ``restart_seconds`` and starts with ``cfg`` and ``build``,
        cold (or, after ``warmup_requests``, warm enough: a deploy pipeline's warm-up)."""
        env = self.env
        checks = cfg.health_check
        self.ready = False
        self.announce(self.name, "instance_stopping", why)
        yield env.timeout(checks.interval_s * (checks.fails_to_remove + 1))
        give_up = env.now + self.lb_timeout_s
        while self.requests and env.now < give_up:
            yield env.timeout(1.0)
        self.cfg = cfg
        if not self.up:  # it died meanwhile: its own restart brings it back, with cfg
            self.start_jvm(cfg, build)
            self.ready = True
            return
        self.up = False
        self.restarts += 1
        for process in list(self.requests):
            process.interrupt("shutdown timeout")
        self.workers.reset()
        self.db_pool.reset()
        self.start_jvm(cfg, build)
        self.ready = not warmup_requests
        yield from self.restart()
        if warmup_requests:
            yield from self.warm_up(warmup_requests)

    def warm_up(self, requests: int) -> Process:
        """The pipeline replays ``requests`` synthetic requests against the new JVM while it is
        still out of rotation (its readiness fails until then): the JIT compiles the hot paths
        before shoppers arrive. Its own load on the host is not modelled (nobody else is there)."""
        yield self.env.timeout(requests / DEPLOY_WARMUP_RPS)
        if self.up:
            for _ in range(requests):
                self.jit_factor = self.jit.query_factor(1.0)
        self.ready = True

    def take_interval(self) -> InstanceFigures:
        """Its figures and its resources' for the sampler; every counter starts again."""
        figures = InstanceFigures(
            self.name, self.up, self.build.version, self.served, self.errors, self.latencies,
            self.cpu.take_interval(), self.heap.take_interval(), self.workers.take_interval(),
            self.db_pool.take_interval(), self.breaker.take_interval())
        self.served = self.errors = 0
        self.latencies = []
        return figures
