"""The scenario schema: every default and every validation rule lives here, and only here.

A scenario YAML is parsed into immutable pydantic models. Anything wrong with it becomes a
``ScenarioError`` whose one-line message names the file, the field path and the problem.
"""

from __future__ import annotations

import datetime as dt
import re
from pathlib import Path
from typing import Annotated, Any, Final, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from sim.core.clock import now_offset, resolve_time_expression, resolve_window

PositiveInt = Annotated[int, Field(gt=0)]
PositiveFloat = Annotated[float, Field(gt=0)]
NonNegFloat = Annotated[float, Field(ge=0)]
Probability = Annotated[float, Field(ge=0, le=1)]


class ScenarioError(Exception):
    """Bad input: the message is the one line the user sees."""


class _Model(BaseModel):
    # validate_default: an int default in a float field becomes a float, so a default prints
    # exactly like the same value written in a YAML file; no .inf/.nan (an infinite rate or
    # duration is never meant and never ends)
    model_config = ConfigDict(extra="forbid", frozen=True, validate_default=True,
                              allow_inf_nan=False)


class WindowConfig(_Model):
    """Which simulated time is written. Either ``days`` ending at 24:00 UTC of ``today``, or
    ``start``/``end``; a warm-up before the window brings the storefront to steady state."""

    days: PositiveInt = 1
    today: dt.date | None = None
    start: str | None = None
    end: str | None = None
    warmup_minutes: NonNegFloat = 10

    @model_validator(mode="after")
    def _start_and_end_together(self) -> WindowConfig:
        if (self.start is None) != (self.end is None):
            raise ValueError("start and end must be given together")
        return self


class EndpointMix(_Model):
    """Relative weights of the request types a shopper sends."""

    home: NonNegFloat = 0.22
    search: NonNegFloat = 0.20
    product: NonNegFloat = 0.33
    cart: NonNegFloat = 0.15
    checkout: NonNegFloat = 0.10

    @model_validator(mode="after")
    def _some_weight(self) -> EndpointMix:
        if sum(self.model_dump().values()) <= 0:
            raise ValueError("at least one endpoint weight must be > 0")
        return self


class TrafficConfig(_Model):
    """Arrivals: the seed's daily schedule scaled by base_tps and peak_multiplier."""

    base_tps: PositiveFloat = 20.0
    peak_multiplier: Annotated[float, Field(ge=1)] = 2.5
    noise: Annotated[float, Field(ge=0, le=0.5)] = 0.08
    weekend_factor: PositiveFloat = 1.0
    endpoints: EndpointMix = EndpointMix()
    customers: PositiveInt = 5000


# The seed's daily schedule (its README, UTC): 00-06 low traffic 10 TPS, 06-09 morning ramp
# 15-30, 09-12 business hours 25-40, 12-14 lunch peak 35-50, 14-17 afternoon 30-45, 17-20
# evening peak 40-60, 20-24 evening decline 20-10. The rate is
# base_tps * (NIGHT_SHARE + (peak_multiplier - NIGHT_SHARE) * shape): with the seed's 20 TPS
# base and x2.5 peak, shape 0 is its 10 TPS night and shape 1 its 50 TPS peak hours. The
# shape is given at anchor hours inside each band's range; sim/model/traffic.py joins them
# by cosine interpolation, so no band ends in a cliff.
SHAPE_ANCHORS: tuple[tuple[float, float], ...] = (
    (0.0, 0.02), (3.5, 0.0), (6.0, 0.08), (7.5, 0.3), (9.0, 0.5), (10.5, 0.6),
    (12.0, 0.72), (13.0, 0.95), (14.0, 0.75), (15.5, 0.68), (17.0, 0.8),
    (18.5, 1.15), (20.0, 0.8), (22.0, 0.3), (24.0, 0.02),
)
NIGHT_SHARE: Final = 0.5  # of base_tps: the seed's 10 TPS nights at its 20 TPS base
# traffic.noise is slow: a knot every 5 minutes, AR(1)-correlated over about 30 minutes (a
# newsletter, the weather): days differ by swings of tens of minutes, not second to second
NOISE_KNOT_S: Final = 300.0
NOISE_CORRELATION_S: Final = 1800.0
SESSION_IDLE_S: Final = 1800.0  # a shopper idle this long starts a new session (web analytics' 30 min)


class DbPoolConfig(_Model):
    """HikariCP-style pool per app instance."""

    max_size: PositiveInt = 10
    # fail fast: with 40 worker threads at most ~30 requests can queue for 10 connections,
    # so a pool starved by slow queries makes them wait ~2-3 s; a 2 s connectionTimeout
    # (HikariCP's 30 s default would never fire) turns that into SQLTransientConnectionException
    connection_timeout_ms: PositiveFloat = 2_000


class CacheConfig(_Model):
    """A service's cache of its hot working set (sim/model/resources/cache.py): a cold call costs
    ``1 + cold_extra`` x a warm one; each call at a slowdown evicts ``evict_per_slow_call``
    of it, each ordinary call brings back ``warm_per_call`` of what is missing."""

    cold_extra: NonNegFloat = 25.0
    evict_per_slow_call: Probability = 0.002
    warm_per_call: Probability = 1.7e-4


class DbServerConfig(_Model):
    """The shared database: finite concurrent queries, lognormal query time."""

    max_active: PositiveInt = 64
    query_ms_median: PositiveFloat = 6.0
    query_sigma: NonNegFloat = 0.6
    # Postgres page cache: a cold query costs ~30x a cached one (disk reads on network
    # storage); scans evict the working set, ordinary queries bring it back (1/50,000 a query)
    cache: CacheConfig = CacheConfig(cold_extra=30.0, warm_per_call=2e-5)


class HeapConfig(_Model):
    """JVM heap per instance: young-gen allocation drives minor GCs, old-gen fill drives full GCs."""

    max_mb: PositiveFloat = 2048
    young_mb: PositiveFloat = 384
    baseline_live_mb: PositiveFloat = 520
    alloc_kb_per_request: PositiveFloat = 1800
    promotion_ratio: Probability = 0.04
    minor_pause_ms: PositiveFloat = 12
    full_gc_threshold: Annotated[float, Field(gt=0, le=1)] = 0.8
    full_pause_ms_per_gb: PositiveFloat = 900
    restart_seconds: PositiveFloat = 45
    # the leaked structure is walked on every call of the leaky path (a growing audit list
    # scanned for duplicates): CPU work and garbage grow with what leaked
    leak_scan_ms_per_mb: NonNegFloat = 0.4
    leak_scan_garbage_ratio: NonNegFloat = 0.01


# The endpoints' heap allocations (``alloc_mb`` in sim/model/endpoints.py) average about
# 1.8 MB a request at the default mix: heap.alloc_kb_per_request scales them against this
ALLOC_KB_REFERENCE: Final = 1800.0
# HotSpot's GC overhead limit (-XX:GCTimeLimit=98, -XX:GCHeapFreeLimit=2): collections that
# free under 2% of the heap end in OutOfMemoryError; here, a live set at 98% of the old gen
OOM_LIVE_SHARE: Final = 0.98
# the adaptive size policy shrinks the young generation as the live set fills the old one:
# to this share of the old generation's free room plus a floor (so allocation still goes on),
# which makes a filling heap collect ever more often, the GC death spiral before an OOM
YOUNG_HEADROOM_SHARE: Final = 0.5
YOUNG_MIN_MB: Final = 16.0


class GatewayConfig(_Model):
    """The external payment gateway, called synchronously from checkout.

    Charges are not idempotent, so only fast 5xx answers are retried (``max_retries``); a
    read timeout fails the checkout at once."""

    latency_ms_median: PositiveFloat = 260
    latency_sigma: NonNegFloat = 0.35
    read_timeout_ms: PositiveFloat = 30_000
    max_retries: Annotated[int, Field(ge=0, le=5)] = 2
    retry_backoff_ms: NonNegFloat = 200
    decline_rate: Probability = 0.06
    error_rate: Probability = 0.002


# a failing gateway answers fast with a 5xx (an error from its edge, no charge processed):
# in this share of its median latency
GATEWAY_ERROR_LATENCY_SHARE: Final = 0.3


class BreakerConfig(_Model):
    """Resilience4j-style count-based circuit breaker around the gateway, one per instance.

    Small window and few half-open probes, slow calls (20 s, well above the gateway's
    normal ~260 ms) count: it opens about a minute into a gateway slowdown, and the open
    wait doubles per failed probe round (60 s, 120 s, 240 s) so recovery lags the cause."""

    enabled: bool = True
    window_size: PositiveInt = 20
    minimum_calls: PositiveInt = 10
    failure_rate_threshold: Annotated[float, Field(gt=0, le=100)] = 50
    slow_call_rate_threshold: Annotated[float, Field(gt=0, le=100)] = 60
    slow_call_duration_ms: PositiveFloat = 20_000
    wait_open_ms: PositiveFloat = 60_000
    backoff_multiplier: Annotated[float, Field(ge=1)] = 2.0
    max_wait_open_ms: PositiveFloat = 240_000
    half_open_calls: PositiveInt = 3


BREAKER_REFUSAL_S: Final = 0.001  # CallNotPermittedException is thrown in-process: next to no time


class UpstreamConfig(_Model):
    """An internal HTTP dependency (inventory, recommendations).

    Its GETs are idempotent, so a read timeout is retried (``retries`` more attempts) before
    the request fails: a slow upstream holds a worker thread for several timeouts."""

    latency_ms_median: PositiveFloat = 40
    latency_sigma: NonNegFloat = 0.4
    timeout_ms: PositiveFloat = 3000
    retries: Annotated[int, Field(ge=0, le=5)] = 1
    # whatever made it slow churned its cache, which refills with the calls it serves
    cache: CacheConfig = CacheConfig()


class HealthCheckConfig(_Model):
    """The load balancer learns that an instance died only from its health checks: until the
    ``fails_to_remove``-th failed probe it keeps sending requests there (connection refused,
    502); a restarted JVM gets traffic again after ``passes_to_add`` passing probes."""

    interval_s: PositiveFloat = 5.0
    fails_to_remove: PositiveInt = 2
    passes_to_add: PositiveInt = 2


# instance i's first probe comes (i * HEALTH_CHECK_PHASE_STEP mod 1) of an interval in: each
# target's checks run on their own timer, and a step near 1 - 1/golden ratio (0.382) spreads
# any number of instances over the interval with no two in lockstep
HEALTH_CHECK_PHASE_STEP: Final = 0.37


class JitConfig(_Model):
    """A restarted JVM runs interpreted, unprofiled code: app work costs up to
    ``1 + cold_extra`` x more and warms up as the JIT sees traffic (per request served)."""

    cold_extra: NonNegFloat = 3.0
    warmup_requests: PositiveFloat = 4000


class ShopperConfig(_Model):
    """Shoppers who get a 5xx (or give up waiting) often try again: the retry storm that
    amplifies every incident, and the backlog that makes recovery take minutes."""

    retry_probability: Probability = 0.6
    max_retries: Annotated[int, Field(ge=0, le=10)] = 3
    retry_delay_min_s: NonNegFloat = 2.0
    retry_delay_max_s: NonNegFloat = 20.0

    @model_validator(mode="after")
    def _ordered_delays(self) -> ShopperConfig:
        if self.retry_delay_max_s < self.retry_delay_min_s:
            raise ValueError("retry_delay_max_s must be >= retry_delay_min_s")
        return self


class StorefrontConfig(_Model):
    """The resources requests contend for."""

    instances: PositiveInt = 4
    worker_threads: PositiveInt = 40
    accept_queue: Annotated[int, Field(ge=0)] = 60
    lb_timeout_ms: PositiveFloat = 60_000
    # cores per instance: app work runs as CPU bursts that hold a core, GC pauses take them all
    cpu_cores: PositiveInt = 8
    # CPU time of app work per ms of an endpoint's median (a slower or faster build)
    cpu_ms_scale: PositiveFloat = 1.0
    # spread of one app work step's CPU time around that median (lognormal sigma): payloads
    # and code paths differ; about a fifth of the steps take over 1.5x the median
    cpu_sigma: NonNegFloat = 0.45
    # the build every instance runs when the window starts (a deploy changes it per host)
    version: Annotated[str, Field(min_length=1, max_length=64)] = "2.13.4"
    health_check: HealthCheckConfig = HealthCheckConfig()
    jit: JitConfig = JitConfig()
    shoppers: ShopperConfig = ShopperConfig()
    db_pool: DbPoolConfig = DbPoolConfig()
    db_server: DbServerConfig = DbServerConfig()
    heap: HeapConfig = HeapConfig()
    payment_gateway: GatewayConfig = GatewayConfig()
    circuit_breaker: BreakerConfig = BreakerConfig()
    inventory: UpstreamConfig = UpstreamConfig(latency_ms_median=35)
    recommendations: UpstreamConfig = UpstreamConfig(latency_ms_median=70, timeout_ms=2000)


# When a resource announces itself saturated or recovered (its ``on_state``, into the
# StateLog: the ground truth reads from it which resource gave way first). Recovery sits
# below saturation, as in alerting rules, so a resource at the edge does not flap.
THREADS_RECOVERED_BUSY: Final = 0.8  # worker threads busy, with an empty accept queue
CPU_SATURATED_BUSY: Final = 0.95  # app work kept this share of the cores busy ...
CPU_HOT_WINDOWS: Final = 2  # ... for this many windows in a row (GC pauses aside: their own symptom)
CPU_WINDOW_S: Final = 2.0  # the busy share is measured over windows this long
CPU_RECOVERED_BUSY: Final = 0.8  # a window below this
DB_POOL_EXHAUSTED_WAITERS: Final = 0.5  # waiters per pooled connection ...
DB_POOL_EXHAUSTED_WAIT: Final = 0.25  # ... the oldest waiting this share of the connection timeout
DB_RECOVERED_ACTIVE: Final = 0.8  # a pool's (or the DB's) busy share, with nobody waiting
HEAP_PRESSURE_SHARE: Final = 0.6  # live set share of the old generation after a full GC
LONG_GC_PAUSE_S: Final = 1.5  # a full GC this long (everyday full GCs of the default heap take ~1.2 s)
QUIET_BEFORE_TIMEOUTS_START_S: Final = 120.0  # a dependency timeout after this long without one
# a cache this warm counts as fully warm: a call costs its warm time exactly again (it
# refills a share of what is missing per call, so it would otherwise never quite get there)
CACHE_WARM_RATIO: Final = 0.999


class BackgroundErrorsConfig(_Model):
    """Everyday failures. ``error_rate_normal`` (percent of all requests) is split across the
    causes by weight; card declines come from the gateway's decline_rate on top of it."""

    error_rate_normal: Annotated[float, Field(ge=0, le=20)] = 1.0
    validation_weight: NonNegFloat = 0.55
    not_found_weight: NonNegFloat = 0.3
    deadlock_weight: NonNegFloat = 0.05
    internal_weight: NonNegFloat = 0.1


FaultType = Literal[
    "payment_gateway_slowdown",
    "db_slow_queries",
    "memory_leak",
    "dependency_error_burst",
    "upstream_slowdown",
    "traffic_surge",
]


class FaultConfig(_Model):
    """One injected root cause. ``magnitude`` is in the fault type's own unit (see docs)."""

    type: FaultType
    start: str
    duration_minutes: PositiveFloat = 10
    magnitude: NonNegFloat | None = None
    ramp_minutes: NonNegFloat = 2
    target: str | None = None
    incident_type: str | None = None


def _plain_id(value: str | None) -> str | None:
    if value is not None and not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}", value):
        raise ValueError(f"invalid id {value!r} (letters, digits, '_', '.', '-'; "
                         "at most 64, starting with a letter or digit)")
    return value


class ControlFault(FaultConfig):
    """A fault in a live run's control file: the scenario's fault schema, an optional ``id``
    (what ``storefront-sim clear`` names) and, for ``start`` only here, "now" / "now+5m"."""

    id: str | None = None

    _id = field_validator("id")(_plain_id)


ChangeKind = Literal["config_push", "deploy", "feature_flag"]

# The storefront's feature flags (sim/model/feature_flags.py): each one's effect goes through
# the model's own mechanisms, never painted on.
FEATURE_FLAGS: Final = {
    "recommended_for_you": "product pages add a 'recommended for you' widget: one more "
                           "recommendations call per page",
    "checkout_fraud_check": "checkout runs a fraud-score query inside the order's transaction, "
                            "holding its pooled connection longer",
    "search_personalization": "search re-ranks results per shopper: one more CPU step per search",
}
# A deploy's warm-up replays its synthetic requests at this rate (requests per second)
DEPLOY_WARMUP_RPS: Final = 200.0
# Faults a build can carry in its code: active on exactly the hosts running that version
CODE_FAULTS: Final = ("memory_leak",)


class CodeFault(_Model):
    """A fault in a deployed build's code (``magnitude`` in the fault type's unit)."""

    type: Literal["memory_leak"]
    magnitude: PositiveFloat | None = None


class ChangeConfig(_Model):
    """A change made to the running storefront, at ``at``: the answer to "what changed?".

    - ``config_push`` sets storefront ``settings`` (dotted paths, as in ``storefront:``) on
      ``hosts``; see ``PUSH_LIVE`` for what applies without a restart.
    - ``deploy`` rolls ``version`` out to ``hosts``, one at a time, ``pause_seconds`` apart;
      each step is a graceful restart. ``fault`` is a bug the build carries in its code.
    - ``feature_flag`` switches ``flag`` on (``enabled``) for a ``share`` of shoppers, or off.
    ``hosts`` means every instance if omitted (a flag is fleet-wide: it takes no hosts)."""

    id: str | None = None
    kind: ChangeKind
    at: str
    hosts: Annotated[list[str], Field(min_length=1)] | None = None
    settings: Annotated[dict[str, Any], Field(min_length=1)] | None = None
    version: Annotated[str, Field(min_length=1, max_length=64)] | None = None
    pause_seconds: NonNegFloat = 60
    # the pipeline's warm-up: synthetic requests replayed against each restarted JVM before its
    # readiness passes, so the JIT has compiled the hot paths (0: straight into rotation, cold)
    warmup_requests: Annotated[int, Field(ge=0, le=1_000_000)] = 8000
    fault: CodeFault | None = None
    flag: str | None = None
    enabled: bool = True
    share: Annotated[float, Field(gt=0, le=1)] = 1.0
    message: str | None = None
    # a red herring planted on purpose (the benchmark's cases, a demo): why it is not a cause.
    # It acts like any change; the ground truth records it as a distractor, never as a cause
    benign: Annotated[str, Field(min_length=1, max_length=200)] | None = None

    _id = field_validator("id")(_plain_id)


# What each kind of change takes (besides id, kind, at, message); the rest is refused
CHANGE_FIELDS: Final = {
    "config_push": ("settings", "hosts"),
    "deploy": ("version", "hosts", "pause_seconds", "warmup_requests", "fault"),
    "feature_flag": ("flag", "enabled", "share"),
}
CHANGE_REQUIRED: Final = {"config_push": "settings", "deploy": "version", "feature_flag": "flag"}


# What a config push may set: what an app instance holds itself. These its components take
# live (HikariCP's maximumPoolSize, Tomcat's maxThreads and acceptCount, all resizable at
# runtime); the rest of PUSHABLE needs the JVM restarted. Settings of shared components
# (the database, the gateway's client, the upstreams, the load balancer) are not per host.
PUSH_LIVE: Final = ("worker_threads", "accept_queue", "db_pool.max_size")
PUSHABLE: Final = (*PUSH_LIVE, "cpu_cores", "cpu_ms_scale", "cpu_sigma", "heap.", "jit.",
                   "circuit_breaker.", "payment_gateway.max_retries",
                   "payment_gateway.retry_backoff_ms")


def pushable(path: str) -> bool:
    return any(path == p or (p.endswith(".") and path.startswith(p)) for p in PUSHABLE)


def setting_problem(path: str) -> str | None:
    """Why ``path`` names no storefront setting a config push can set (None if it does)."""
    node: Any = StorefrontConfig
    for key in path.split("."):
        if not (isinstance(node, type) and issubclass(node, BaseModel)) or key not in node.model_fields:
            return "unknown storefront setting"
        node = node.model_fields[key].annotation
    if isinstance(node, type) and issubclass(node, BaseModel):
        return f"a group of settings; name one of them (e.g. {path}.{next(iter(node.model_fields))})"
    if path == "version":
        return "the build an instance runs: change it with a deploy"
    if not pushable(path):
        return ("not held by an app instance, so a push cannot set it (pushable: "
                f"{', '.join(p + '*' if p.endswith('.') else p for p in PUSHABLE)})")
    return None


def with_settings(cfg: StorefrontConfig, settings: dict[str, Any]) -> StorefrontConfig:
    """``cfg`` with the pushed settings, validated as the scenario's own (ValueError if refused)."""
    raw = cfg.model_dump()
    for path, value in settings.items():
        _set_path(raw, path, value)
    try:
        return StorefrontConfig.model_validate(raw)
    except ValidationError as exc:
        err = exc.errors()[0]
        raise ValueError(f"{_format_loc(tuple(err['loc']))}: {err['msg']}") from None


def check_changes(scenario: Scenario, source: str) -> None:
    """Every change's time, hosts, settings, version and flag name something real, and the
    values are ones the storefront's schema takes: a typo would otherwise change nothing,
    without a word."""
    check_change_list(scenario.changes, scenario.storefront, source)
    check_anomalies(scenario, source)


def check_anomalies(scenario: Scenario, source: str) -> None:
    """Each placed anomaly's host and time name something real (as a change's do)."""
    hosts = tuple(instance_name(i) for i in range(scenario.storefront.instances))
    for i, anomaly in enumerate(scenario.distractors.anomalies):
        where = f"{source}: distractors.anomalies[{i}]"
        if anomaly.kind == "batch_job" and anomaly.host not in hosts:
            raise ScenarioError(f"{where}.host: unknown instance {anomaly.host!r} "
                                f"(valid: {', '.join(hosts)})")
        try:
            resolve_time_expression(anomaly.at, dt.date(2000, 1, 3))
        except ValueError as exc:
            raise ScenarioError(f"{where}.at: {exc}") from None


def check_change_list(changes: list[ChangeConfig], storefront: StorefrontConfig, source: str,
                      live: bool = False) -> None:
    """``check_changes`` for a list of changes; ``live``: a control file's, where ``at`` may
    also be "now" / "now+5m"."""
    hosts = tuple(instance_name(i) for i in range(storefront.instances))
    shown = ", ".join(hosts) if len(hosts) <= 6 else f"{hosts[0]} .. {hosts[-1]}"
    for i, change in enumerate(changes):
        where = f"{source}: changes[{i}]"
        _check_change_fields(change, where)
        try:
            if now_offset(change.at) is not None:
                if not live:
                    raise ValueError(f"{change.at!r} is only for a live run; a scenario needs "
                                     "a fixed time such as 'today 11:00'")
            else:
                resolve_time_expression(change.at, dt.date(2000, 1, 3))
        except ValueError as exc:
            hint = " or 'now', 'now+5m'" if live else ""
            raise ScenarioError(f"{where}.at: {exc}{hint}") from None
        for host in change.hosts or ():
            if host not in hosts:
                raise ScenarioError(f"{where}.hosts: unknown instance {host!r} (valid: {shown})")
        if change.flag is not None and change.flag not in FEATURE_FLAGS:
            raise ScenarioError(f"{where}.flag: unknown feature flag {change.flag!r} "
                                f"(valid: {', '.join(FEATURE_FLAGS)})")
        for path in change.settings or {}:
            problem = setting_problem(path)
            if problem:
                raise ScenarioError(f"{where}.settings.{path}: {problem}")
        try:
            with_settings(storefront, change.settings or {})
        except ValueError as exc:
            raise ScenarioError(f"{where}.settings.{exc}") from None


def _check_change_fields(change: ChangeConfig, where: str) -> None:
    """A change gives what its kind needs and nothing another kind takes."""
    required = CHANGE_REQUIRED[change.kind]
    if getattr(change, required) is None:
        raise ScenarioError(f"{where}.{required}: required for a {change.kind}")
    allowed = CHANGE_FIELDS[change.kind]
    for name in change.model_fields_set:
        if name not in allowed and name not in ("id", "kind", "at", "message", "benign"):
            raise ScenarioError(f"{where}.{name}: not a field of a {change.kind} "
                                f"(it takes: {', '.join(allowed)})")


class ControlConfig(_Model):
    """A live run's control file (sim/live/control.py): runtime faults and changes."""

    faults: list[ControlFault] = []
    changes: list[ChangeConfig] = []


class RandomIncidentsConfig(_Model):
    """Incidents drawn deterministically from the seed, per simulated day."""

    per_day: Annotated[float, Field(ge=0, le=10)] = 0
    min_gap_minutes: NonNegFloat = 90
    error_rate_incident: Annotated[float, Field(gt=0, le=100)] | None = None


# Random incidents (sim/model/random_incidents.py): a drawn magnitude varies by this lognormal
# sigma (about +-12%: no two incidents alike); this share of upstream slowdowns hits
# recommendations (the rest inventory); a random fault ramps up like a pinned one by default
# (ramp_minutes 2); a load-bound cause is scaled by the traffic this far into the incident,
# when it has taken hold
RANDOM_MAGNITUDE_SIGMA: Final = 0.12
RECOMMENDATIONS_SHARE: Final = 0.35
RANDOM_RAMP_S: Final = 120.0
LOAD_SAMPLE_AFTER_S: Final = 300.0


class TracesConfig(_Model):
    """Distributed traces (sim.telemetry.spans), sampled as a collector's tail sampler does:
    every failed trace and every one slower than ``slow_ms`` is kept, plus ``sample_share``
    of the rest. 5 % keeps a few hundred ordinary traces an hour to compare the slow ones
    with, at a small fraction of the cost of keeping them all (docs/performance.md)."""

    enabled: bool = False  # --trace-sample turns them on
    sample_share: Probability = 0.05
    slow_ms: PositiveFloat = 2_000  # the storefront's latency objective is well under this


class PlannedAnomaly(_Model):
    """A benign anomaly placed at a given time (``sim/model/distractors.py``): a batch job
    holding ``cores`` of ``host``'s cores for ``minutes``, or a flush of the database's cache."""

    id: str
    kind: Literal["batch_job", "cache_flush"]
    at: str
    host: str = "app-01"  # batch_job
    minutes: Annotated[float, Field(gt=0, le=240)] = 15.0
    cores: Annotated[int, Field(ge=1, le=64)] = 4

    _id = field_validator("id")(_plain_id)


class DistractorsConfig(_Model):
    """Benign changes and anomalies drawn per simulated day from the seed
    (sim/model/distractors.py): leads that are not causes."""

    per_day: Annotated[float, Field(ge=0, le=20)] = 0
    anomalies: list[PlannedAnomaly] = []  # placed by hand, on top of the drawn ones


class OutputConfig(_Model):
    dir: str = "./output"
    index: str = "ecommerce_performance_demo"
    incidents_index: str = "ecommerce_performance_incidents"
    metrics_interval_s: PositiveFloat = 10
    split_files: bool = False  # the seed's normal/incident/recovery files; or `split` later
    gzip: bool = False  # write .ndjson.gz (--gzip)
    alerts_index: str = "ecommerce_performance_alerts"  # alert documents (not telemetry)
    traces: TracesConfig = TracesConfig()



# -- alerts: the monitors an on-call team has (sim.telemetry.alerts evaluates them) -------
AlertSource = Literal["transactions", "metrics"]
# what a rule may filter or group on, per source: keyword fields both documents carry
ALERT_KEYWORDS: Final = {"transactions": ("service.name", "transaction.name", "host.name"),
                         "metrics": ("service.name", "service.type", "host.name")}
# the numeric fields of the 10 s metric documents a rule may aggregate (docs/fields.md)
ALERT_METRIC_FIELDS: Final = (
    "host.cpu.usage", "jvm.memory.used", "jvm.memory.limit", "jvm.gc.duration", "jvm.gc.count",
    "jvm.gc.full_count",
    "thread_pool.active", "thread_pool.queued", "db.client.connection.used",
    "db.client.connection.pending_requests", "circuit_breaker.state_code",
    "circuit_breaker.not_permitted_calls", "requests.rate", "requests.error_rate_pct",
    "requests.p95_ms", "db.active_queries", "db.queued_queries", "db.avg_query_ms",
    "gateway.latency_p95_ms", "gateway.calls", "gateway.timeouts", "gateway.failures")
# transactions: p95/p99 of response_time_ms (breached when more than 5%/1% of the requests
# took longer than the threshold: exact on both sides, where a percentiles aggregation is a
# sketch), error_rate (percent answered 5xx), count; metrics: of ``field`` over the interval
AlertAggregation = Literal["p95", "p99", "error_rate", "count", "max", "min", "avg", "sum"]
TRANSACTION_AGGREGATIONS: Final = ("p95", "p99", "error_rate", "count")


class AlertRule(_Model):
    """One monitor: its query (source, ``where`` filter, ``group_by``, aggregation of
    ``field``, optionally as a percentage of the interval's max of ``relative_to``), checked
    every ``interval_minutes`` against ``threshold``; it fires after ``for_minutes`` of
    breaching evaluations in a row and resolves after ``resolve_after`` evaluations without
    that."""

    id: str
    name: str
    severity: Literal["critical", "warning"] = "warning"
    source: AlertSource
    where: dict[str, str] = {}
    group_by: str | None = None
    aggregation: AlertAggregation
    field: str | None = None
    relative_to: str | None = None
    comparison: Literal["above", "below"] = "above"
    threshold: float
    interval_minutes: PositiveInt = 1
    for_minutes: PositiveInt = 1
    resolve_after: PositiveInt = 2
    min_requests: Annotated[int, Field(ge=0)] = 0  # transactions: fewer in an interval never breach
    unit: str = ""

    _id = field_validator("id")(_plain_id)

    @model_validator(mode="after")
    def _query(self) -> AlertRule:
        problem = _alert_rule_problem(self)
        if problem:
            raise ValueError(problem)
        return self


def _alert_rule_problem(r: AlertRule) -> str | None:
    """Why a rule's query or timing cannot be a monitor, as ".field: problem" (None when it
    can)."""
    keywords = ALERT_KEYWORDS[r.source]
    named = [("where", k) for k in r.where] + ([("group_by", r.group_by)] if r.group_by else [])
    for key, name in named:
        if name not in keywords:
            return f".{key}: {r.source} have no {name!r} to filter or group on ({', '.join(keywords)})"
    transactions = r.source == "transactions"
    if transactions != (r.aggregation in TRANSACTION_AGGREGATIONS):
        takes = "p95, p99, error_rate, count" if transactions else "max, min, avg, sum"
        return f".aggregation: {r.aggregation!r} is not for {r.source}, which take {takes}"
    for key in ("field", "relative_to"):
        name = getattr(r, key)
        if transactions and name is not None:
            return f".{key}: transactions rules read response_time_ms and the status; no {key}"
        if name is not None and name not in ALERT_METRIC_FIELDS:
            return f".{key}: unknown metric field {name!r}"
    if not transactions and r.min_requests:
        return ".min_requests: only for transactions rules"
    if not transactions and r.field is None:
        return ".field: a metrics rule needs the field it aggregates"
    if r.for_minutes < r.interval_minutes or r.for_minutes % r.interval_minutes:
        return (f".for_minutes: {r.for_minutes} is not a whole number of evaluation intervals "
                f"(interval_minutes: {r.interval_minutes})")
    return None


class AlertsConfig(_Model):
    """``rules`` are added to the shipped defaults (``DEFAULT_ALERT_RULES``); one with a
    default's id replaces it; ``defaults: false`` keeps only ``rules``."""

    defaults: bool = True
    rules: list[AlertRule] = []

    @model_validator(mode="after")
    def _unique(self) -> AlertsConfig:
        seen: set[str] = set()
        for rule in self.rules:
            if rule.id in seen:
                raise ValueError(f".rules: rule id {rule.id!r} appears twice")
            seen.add(rule.id)
        return self



def _rule(**kw: Any) -> AlertRule:
    return AlertRule.model_validate(kw)


# What an e-commerce on-call team pages on (docs/alerts.md says why each threshold).
DEFAULT_ALERT_RULES: Final = (
    _rule(id="checkout-latency", name="Checkout p95 over 2 s", severity="critical",
          source="transactions", aggregation="p95",
          where={"service.name": "checkout-service", "transaction.name": "checkout"},
          threshold=2000, unit="ms", for_minutes=2, resolve_after=3, min_requests=20),
    _rule(id="service-error-rate", name="Service error rate (5xx) over 5%", severity="critical",
          source="transactions", group_by="service.name", aggregation="error_rate",
          threshold=5, unit="%", for_minutes=2, resolve_after=3, min_requests=20),
    _rule(id="db-pool-pending", name="DB pool requests pending", severity="warning",
          source="metrics", where={"service.type": "app-instance"}, group_by="host.name",
          aggregation="min", field="db.client.connection.pending_requests", threshold=0,
          for_minutes=1, resolve_after=2),
    _rule(id="circuit-breaker-open", name="Payment circuit breaker open", severity="critical",
          source="metrics", where={"service.type": "app-instance"}, group_by="host.name",
          aggregation="max", field="circuit_breaker.state_code", threshold=1.5,
          for_minutes=1, resolve_after=2),
    _rule(id="heap-after-gc", name="Heap full after GC (full GCs back to back)",
          severity="critical", source="metrics", where={"service.type": "app-instance"},
          group_by="host.name", aggregation="sum", field="jvm.gc.full_count", threshold=2,
          unit="full GCs/min", for_minutes=1, resolve_after=3),
    _rule(id="cpu-high", name="CPU over 90% for 5 minutes", severity="warning",
          source="metrics", where={"service.type": "app-instance"}, group_by="host.name",
          aggregation="avg", field="host.cpu.usage", threshold=0.9, for_minutes=5,
          resolve_after=2),
    _rule(id="instance-out-of-lb", name="Instance out of the load balancer", severity="warning",
          source="metrics", where={"service.type": "app-instance"}, group_by="host.name",
          aggregation="max", field="requests.rate", comparison="below", threshold=0.1,
          unit="req/s", for_minutes=1, resolve_after=2),
    _rule(id="payment-gateway-timeouts", name="Payment gateway timeouts", severity="critical",
          source="metrics", where={"host.name": "payment-gateway"}, aggregation="sum",
          field="gateway.timeouts", threshold=5, unit="timeouts/min", for_minutes=1,
          resolve_after=2),
)


def alert_rules(scenario: Scenario) -> tuple[AlertRule, ...]:
    """The rules a run evaluates: the defaults (unless switched off) with the scenario's
    rules replacing those of the same id and added after them."""
    own = {r.id: r for r in scenario.alerts.rules}
    shipped = DEFAULT_ALERT_RULES if scenario.alerts.defaults else ()
    merged = [own.pop(r.id, r) for r in shipped]
    return (*merged, *own.values())


class Scenario(_Model):
    name: str = "scenario"
    description: str = ""
    seed: int = 42
    window: WindowConfig = WindowConfig()
    traffic: TrafficConfig = TrafficConfig()
    storefront: StorefrontConfig = StorefrontConfig()
    background_errors: BackgroundErrorsConfig = BackgroundErrorsConfig()
    distractors: DistractorsConfig = DistractorsConfig()
    faults: list[FaultConfig] = []
    changes: list[ChangeConfig] = []
    random_incidents: RandomIncidentsConfig = RandomIncidentsConfig()
    output: OutputConfig = OutputConfig()
    alerts: AlertsConfig = AlertsConfig()


def _format_loc(loc: tuple[Any, ...]) -> str:
    parts: list[str] = []
    for item in loc:
        if isinstance(item, int):
            parts.append(f"[{item}]")
        else:
            parts.append(("." if parts else "") + str(item))
    return "".join(parts) or "(top level)"


def _set_path(raw: dict[str, Any], dotted: str, value: Any) -> None:
    node = raw
    keys = dotted.split(".")
    for key in keys[:-1]:
        child = node.get(key)
        if not isinstance(child, dict):
            child = {}
            node[key] = child
        node = child
    node[keys[-1]] = value


def _validation_error(exc: ValidationError, source: str, overrides: dict[str, Any] | None = None,
                      flag_names: dict[str, str] | None = None) -> ScenarioError:
    err = exc.errors()[0]
    loc = _format_loc(tuple(x for x in err["loc"] if not str(x).startswith("function-")))
    if flag_names and loc in flag_names and loc in (overrides or {}):
        loc = f"{flag_names[loc]} ({loc})"
    msg = err["msg"]
    if err["type"] == "extra_forbidden":
        msg = "unknown key"
    elif err["type"] == "literal_error":
        msg = f"unknown value {err.get('input')!r}: {msg}"
    elif err["type"] == "value_error":
        msg = msg.removeprefix("Value error, ")
        if msg.startswith("."):  # a model's check naming its field: ".field: problem"
            sub, _, msg = msg.partition(": ")
            loc += sub
    return ScenarioError(f"{source}: {loc}: {msg}")


def check_fault_starts(faults: list[FaultConfig] | list[ControlFault], source: str,
                       live: bool = False) -> None:
    """Every fault's start parses. "now" forms only in a live control file (``live``): in a
    scenario they would make a batch run's output depend on the wall clock."""

    for i, fault in enumerate(faults):
        try:
            if now_offset(fault.start) is not None:
                if not live:
                    raise ValueError(f"{fault.start!r} is only for a live run's control file; "
                                     "a scenario needs a fixed time such as 'today 14:25'")
                continue
            resolve_time_expression(fault.start, dt.date(2000, 1, 3))
        except ValueError as exc:
            hint = " or 'now', 'now+90s', 'now+5m', 'now+1h'" if live else ""
            raise ScenarioError(f"{source}: faults[{i}].start: {exc}{hint}") from None


def check_fault_targets(faults: list[FaultConfig] | list[ControlFault], instances: int,
                        source: str) -> None:
    """Every fault's target names an instance or upstream that exists in the scenario."""
    for i, fault in enumerate(faults):
        problem = _target_problem(fault, instances)
        if problem:
            raise ScenarioError(f"{source}: faults[{i}].target: {problem}")


def parse_scenario(
    raw: Any,
    source: str,
    overrides: dict[str, Any] | None = None,
    flag_names: dict[str, str] | None = None,
) -> Scenario:
    """Validate a raw mapping (plus dotted-path overrides from the CLI) into a Scenario.

    ``flag_names`` maps an overridden path to the CLI flag that set it, so an error about a
    bad flag value names the flag rather than a YAML key the user never wrote."""
    if raw is None:
        raw = {}
    if not isinstance(raw, dict):
        raise ScenarioError(f"{source}: (top level): expected a mapping, got {type(raw).__name__}")
    for dotted, value in (overrides or {}).items():
        if value is not None:
            _set_path(raw, dotted, value)
    try:
        scenario = Scenario.model_validate(raw)
    except ValidationError as exc:
        raise _validation_error(exc, source, overrides, flag_names) from None
    check_fault_starts(scenario.faults, source)

    check_fault_targets(scenario.faults, scenario.storefront.instances, source)
    check_changes(scenario, source)
    for key in ("start", "end"):
        value = getattr(scenario.window, key)
        if value is not None:
            try:
                resolve_time_expression(value, dt.date(2000, 1, 3))
            except ValueError as exc:
                raise ScenarioError(f"{source}: window.{key}: {exc}") from None
    return scenario


def parse_control(raw: Any, source: str) -> ControlConfig:
    """Validate a control file's mapping with the scenario's fault rules (plus "now" starts)."""
    if raw is None:
        raw = {}
    if not isinstance(raw, dict):
        raise ScenarioError(f"{source}: (top level): expected a mapping, got {type(raw).__name__}")
    try:
        control = ControlConfig.model_validate(raw)
    except ValidationError as exc:
        raise _validation_error(exc, source) from None
    check_fault_starts(control.faults, source, live=True)
    return control


def parse_yaml(text: str, path: Path | str) -> Any:
    """YAML text to Python; malformed YAML is a one-line ScenarioError with line and column."""
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark else ""
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise ScenarioError(f"{path}: malformed YAML: {where}{problem}") from None


def check_times(scenario: Scenario, today: dt.date, source: str) -> None:
    """The window and every fault resolved against the run's ``today``: a relative time or a
    duration can leave the calendar (years 1..9999) only once ``today`` is known."""

    w = scenario.window
    try:
        resolve_window(w.days, today, w.start, w.end)
    except ValueError as exc:
        raise ScenarioError(f"{source}: window: {exc}") from None
    for i, fault in enumerate(scenario.faults):
        try:
            start = resolve_time_expression(fault.start, today)
        except ValueError as exc:
            raise ScenarioError(f"{source}: faults[{i}].start: {exc}") from None
        try:  # and its aftermath: the ground truth looks a while past the end
            start + dt.timedelta(minutes=fault.duration_minutes, days=1)
        except OverflowError:
            raise ScenarioError(f"{source}: faults[{i}].duration_minutes: the fault would end "
                                "after the year 9999") from None
    for i, change in enumerate(scenario.changes):
        try:
            resolve_time_expression(change.at, today)
        except ValueError as exc:
            raise ScenarioError(f"{source}: changes[{i}].at: {exc}") from None
    for i, anomaly in enumerate(scenario.distractors.anomalies):
        try:
            resolve_time_expression(anomaly.at, today)
        except ValueError as exc:
            raise ScenarioError(f"{source}: distractors.anomalies[{i}].at: {exc}") from None


UPSTREAMS = ("inventory", "recommendations")


def instance_name(i: int) -> str:
    """The host name of the i-th app instance (0-based): app-01, app-02, ..."""
    return f"app-{i + 1:02d}"


def valid_targets(fault_type: str, instances: int) -> tuple[str, ...]:
    """The names a fault of this type may target (comma-separated for several); () if none."""
    if fault_type == "memory_leak":
        return tuple(instance_name(i) for i in range(instances))
    if fault_type == "upstream_slowdown":
        return UPSTREAMS
    return ()


def _target_problem(fault: FaultConfig, instances: int) -> str | None:
    """Why a fault's target names nothing in this scenario (None if it is fine): a typo
    would otherwise inject nothing and produce no incident, without a word."""
    if fault.target is None:
        return None
    valid = valid_targets(fault.type, instances)
    if not valid:
        return f"{fault.type} takes no target (got {fault.target!r}); remove it"
    shown = ", ".join(valid) if len(valid) <= 6 else f"{valid[0]} .. {valid[-1]}"
    what = "instance" if fault.type == "memory_leak" else "upstream"
    for name in fault.target.split(","):
        if name.strip() not in valid:
            return (f"unknown {what} {name.strip()!r} for {fault.type} (valid: {shown}; "
                    "several separated by commas)")
    return None


def load_scenario(
    path: str | Path,
    overrides: dict[str, Any] | None = None,
    flag_names: dict[str, str] | None = None,
) -> Scenario:
    """Read and validate a scenario file; every failure is a one-line ScenarioError."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ScenarioError(f"{path}: file not found") from None
    except OSError as exc:
        raise ScenarioError(f"{path}: cannot read: {exc.strerror}") from None
    return parse_scenario(parse_yaml(text, path), str(path), overrides, flag_names)
