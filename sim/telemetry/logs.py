"""Logs (``event_type: log``): the state changes the model announces, as the software that
would print them words them.

HikariCP (a pool out of connections: its ``Connection is not available`` line with the pool
figures, for the request that timed out, with its trace id), Resilience4j (the breaker's
state transitions), HotSpot unified GC logging (long full-GC pauses, heap pressure,
``OutOfMemoryError``), Spring Boot (graceful shutdown, start-up after a restart), the load
balancer's health checks (HAProxy's ``is DOWN`` / ``is UP``), the clients whose calls start
timing out, and the rest of the resources' saturation and recovery. Every line carries
``log.level``, ``log.logger``, ``host.name``, ``service.name`` and ``event.action`` (the
model's own name of the state change).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

from sim.config import StorefrontConfig

LOGS_FILE = "logs.ndjson"  # beside all_data.ndjson, for the same index
APP_SERVICE = "storefront-app"
# component (host) -> service.name of the components that are not app instances
SERVICES = {"db-01": "postgresql", "payment-gateway": APP_SERVICE, "inventory": APP_SERVICE,
            "recommendations": APP_SERVICE, "lb-01": "haproxy", "flagd": "flagd"}
UPSTREAM_URLS = {"inventory": "http://inventory-service:8080/api/v1/stock",
                 "recommendations": "http://recommendation-service:8080/api/v1/recommendations"}
_NUMBERS = re.compile(r"\d+(?:\.\d+)?")

LogLine = tuple[str, str, str]  # level, logger, message


def numbers(detail: str) -> list[str]:
    """The figures a resource put in its announcement, in order."""
    return _NUMBERS.findall(detail)


def hikari(detail: str, cfg: StorefrontConfig) -> LogLine:
    in_use, size, waiting = (numbers(detail) + ["0", "0", "0"])[:3]
    idle = max(0, int(size) - int(in_use))
    return ("WARN", "com.zaxxer.hikari.pool.HikariPool",
            f"HikariPool-1 - Connection is not available, request timed out after "
            f"{cfg.db_pool.connection_timeout_ms:.0f}ms (total={size}, active={in_use}, "
            f"idle={idle}, waiting={waiting})")


def hikari_stats(detail: str, cfg: StorefrontConfig) -> LogLine:
    in_use, size = (numbers(detail) + ["0", "0"])[:2]
    return ("INFO", "com.zaxxer.hikari.pool.HikariPool",
            f"HikariPool-1 - Pool stats (total={size}, active={in_use}, "
            f"idle={max(0, int(size) - int(in_use))}, waiting=0)")


def breaker(detail: str, cfg: StorefrontConfig) -> LogLine:
    old, _, new = detail.partition(" -> ")
    return ("WARN" if new == "OPEN" else "INFO",
            "io.github.resilience4j.circuitbreaker.internal.CircuitBreakerStateMachine",
            f"CircuitBreaker 'paymentGateway' changed state from {old} to {new}")


def full_gc(detail: str, cfg: StorefrontConfig) -> LogLine:
    pause, live = (numbers(detail) + ["0", "0"])[:2]
    return ("WARN", "gc", f"Pause Full (Allocation Failure) {live}M->{live}M"
                          f"({cfg.heap.max_mb:.0f}M) {float(pause):.3f}ms")


def heap_pressure(detail: str, cfg: StorefrontConfig) -> LogLine:
    live = (numbers(detail) + ["0"])[0]
    return ("WARN", "gc,heap", f"Old generation live set {live}M of {cfg.heap.max_mb:.0f}M "
                               "after full GC")


def oom(detail: str, cfg: StorefrontConfig) -> LogLine:
    return ("ERROR", "jvm", "Terminating due to java.lang.OutOfMemoryError: Java heap space")


def started(detail: str, cfg: StorefrontConfig) -> LogLine:
    took = cfg.heap.restart_seconds
    return ("INFO", "com.storefront.StorefrontApplication",
            f"Started StorefrontApplication in {took * 0.9:.3f} seconds "
            f"(process running for {took:.3f})")


def stopping(detail: str, cfg: StorefrontConfig) -> LogLine:
    return ("INFO", "org.springframework.boot.web.embedded.tomcat.GracefulShutdown",
            "Commencing graceful shutdown. Waiting for active requests to complete")


def gateway_timeouts(detail: str, cfg: StorefrontConfig) -> LogLine:
    return ("WARN", "com.storefront.payment.PayGateClient",
            "POST https://api.paygate.example/v2/charges failed: java.net.SocketTimeoutException: "
            f"Read timed out (timeout={cfg.payment_gateway.read_timeout_ms:.0f}ms)")


def said(level: str, logger: str, words: str) -> Callable[[str, StorefrontConfig], LogLine]:
    """A line of a component without a log of its own for this: its words and the detail."""
    return lambda detail, cfg: (level, logger, f"{words}: {detail}")


# the model's state-change events -> their log line
LINES: dict[str, Callable[[str, StorefrontConfig], LogLine]] = {
    "db_pool_exhausted": hikari,
    "db_pool_recovered": hikari_stats,
    "circuit_breaker_open": breaker,
    "circuit_breaker_half_open": breaker,
    "circuit_breaker_closed": breaker,
    "long_gc_pause": full_gc,
    "heap_pressure": heap_pressure,
    "out_of_memory": oom,
    "instance_restarted": started,
    "instance_stopping": stopping,
    "gateway_timeouts_started": gateway_timeouts,
    "thread_pool_saturated": said("WARN", "org.apache.tomcat.util.threads.ThreadPoolExecutor",
                                  "All worker threads busy, requests queue in the accept queue"),
    "thread_pool_recovered": said("INFO", "org.apache.tomcat.util.threads.ThreadPoolExecutor",
                                  "Worker threads available again"),
    "cpu_saturated": said("WARN", "node_exporter", "CPU saturated"),
    "cpu_recovered": said("INFO", "node_exporter", "CPU back to normal"),
    "db_server_saturated": said("WARN", "postgres", "Every backend busy, queries queue"),
    "db_server_recovered": said("INFO", "postgres", "Backends available again"),
}


# who logs a change: the config service's client on the host, the CD tool, the flag service
CHANGE_LOGGERS = {"config_change": ("INFO", "org.springframework.cloud.context.refresh.ContextRefresher"),
                  "deployment": ("INFO", "argocd-application-controller"),
                  "feature_flag": ("INFO", "dev.openfeature.flagd")}


def upstream_timeouts(component: str, detail: str) -> LogLine:
    return ("WARN", "org.springframework.web.client.RestTemplate",
            f'I/O error on GET request for "{UPSTREAM_URLS.get(component, component)}": '
            "Read timed out")


def state_line(component: str, event: str, detail: str, cfg: StorefrontConfig) -> LogLine:
    """The log line of one state change (an unknown event keeps the model's words)."""
    if event == "upstream_timeouts_started":
        return upstream_timeouts(component, detail)
    line = LINES.get(event)
    if line is None:
        return ("INFO", "storefront", f"{event}: {detail}")
    return line(detail, cfg)


def health_line(server: str, up: bool, in_rotation: int, servers: int) -> LogLine:
    """HAProxy's words when a health check takes a server out of rotation or back."""
    if up:
        return ("NOTICE", "haproxy", f"Server storefront/{server} is UP, reason: Layer7 check "
                                     f"passed, code: 200. {in_rotation} active and 0 backup servers "
                                     "online.")
    return ("ALERT", "haproxy", f"Server storefront/{server} is DOWN, reason: Layer4 connection "
                                f"problem, info: \"Connection refused\". {in_rotation} active and 0 "
                                f"backup servers left.{'' if in_rotation else ' No server available!'}")


def log_document(timestamp: str, host: str, event: str, line: LogLine,
                 trace: tuple[str, str] | None = None) -> dict[str, Any]:
    """One log document (``trace``: the request's trace and transaction ids)."""
    level, logger, message = line
    doc: dict[str, Any] = {
        "@timestamp": timestamp, "event_type": "log",
        "event": {"kind": "event", "action": event},
        "log": {"level": level, "logger": logger},
        "service": {"name": SERVICES.get(host, APP_SERVICE)}, "host": {"name": host},
        "message": message,
    }
    if trace is not None:
        doc["trace"] = {"id": trace[0]}
        doc["transaction"] = {"id": trace[1]}
    return doc


class LogCollector:
    """One segment's log lines, gathered while it runs and written in time order at its end:
    the state log's changes, the load balancer's health checks, and a HikariCP line for
    every request whose connection wait timed out (with the request's ids)."""

    def __init__(self, env: Any, cfg: StorefrontConfig, timestamp: Callable[[float], str],
                 pools: dict[str, Any]) -> None:
        self.env = env
        self.cfg = cfg
        self.timestamp = timestamp
        self.pools = pools  # host -> its DbConnectionPool
        self.lines: list[tuple[float, str, str, LogLine, tuple[str, str] | None]] = []
        self.servers = len(pools)

    def health(self, server: str, up: bool, in_rotation: int) -> None:
        """``LoadBalancer.on_health``."""
        self.lines.append((self.env.now, "lb-01", "lb_marked_up" if up else "lb_marked_down",
                           health_line(server, up, in_rotation, self.servers), None))

    def change(self, at_s: float, doc: dict[str, Any]) -> None:
        """A change document's line, from the tool that made it (``Recorder.change_log``)."""
        action = doc["event"]["action"]
        level, logger = CHANGE_LOGGERS[action]
        host = doc.get("host", {}).get("name", "flagd")  # the flag service
        self.lines.append((at_s, host, action, (level, logger, doc["message"]), None))

    def request(self, at_s: float, host: str, ids: int) -> None:
        """A request's connection wait timed out on ``host``: HikariCP's line, the pool's
        figures now."""
        pool = self.pools.get(host)
        if pool is None:
            return
        in_use, size, waiting = len(pool.users), pool.max_size, len(pool.queue)
        line = hikari(f"{in_use}/{size} in use, {waiting} waiting", self.cfg)
        self.lines.append((at_s, host, "db_pool_timeout", line,
                           (f"{ids >> 64:032x}", f"{ids & ((1 << 64) - 1):016x}")))

    def documents(self, state: list[tuple[float, str, str, str]], emit_from: float,
                  emit_until: float) -> list[dict[str, Any]]:
        """Every line inside [emit_from, emit_until), in time order (state changes first
        among equal times, as they happened before what they caused)."""
        lines = [(t, component, event, state_line(component, event, detail, self.cfg), None)
                 for t, component, event, detail in state]
        lines.extend(self.lines)
        lines.sort(key=lambda line: line[0])  # stable: same-time lines keep their order
        return [log_document(self.timestamp(t), host, event, line, trace)
                for t, host, event, line, trace in lines if emit_from <= t < emit_until]
