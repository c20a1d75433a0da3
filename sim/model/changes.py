"""Changes made to the running storefront: config pushes, deploys and feature flags.

A push reaches each of its hosts at its time. What the instance's components can take at
runtime they take at once (``AppInstance.push_live``); if anything else changed, the instance
restarts gracefully to read it (``AppInstance.graceful_restart``). A deploy restarts its hosts
into the new build one at a time, as a rolling update does; a bug the build carries is active
on exactly the hosts that run it. A flag is switched in the flag service, fleet-wide. Symptoms
are whatever the resources then do: a smaller pool is no problem until traffic needs more
connections.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Generator, Sequence
from dataclasses import dataclass
from typing import Any

from sim.config import (
    DEPLOY_WARMUP_RPS,
    PUSH_LIVE,
    ChangeConfig,
    StorefrontConfig,
    instance_name,
    with_settings,
)
from sim.model.app_instance import AppInstance, Build
from sim.model.faults import DEFAULT_MAGNITUDE
from sim.model.feature_flags import FeatureFlags


@dataclass(frozen=True)
class ActiveChange:
    """A change resolved to absolute time (epoch seconds) and to the hosts it reaches (a
    flag reaches none: the flag service serves the whole fleet)."""

    change_id: str
    kind: str
    epoch: float
    hosts: tuple[str, ...]
    settings: tuple[tuple[str, Any], ...] = ()  # config_push: (dotted path, new value), as written
    version: str | None = None  # deploy: the build rolled out
    leak_mb: float = 0.0  # deploy: what the build's bug leaks per call of the leaky path
    pause_s: float = 0.0  # deploy: between one host back in rotation and the next one's restart
    warmup_requests: int = 0  # deploy: replayed against each restarted JVM before its readiness
    flag: str | None = None  # feature_flag
    share: float = 0.0  # feature_flag: the share of shoppers served it from now on (0: off)
    message: str | None = None
    settled_epoch: float = 0.0  # by when it has reached its last host, at the latest
    benign: str | None = None  # a distractor: why it is not a cause

    @property
    def span(self) -> tuple[float, float]:
        return self.epoch, max(self.epoch, self.settled_epoch)

    def build(self) -> Build:
        return Build(self.version or "", self.leak_mb)


def active_change(change: ChangeConfig, change_id: str, epoch: float,
                  cfg: StorefrontConfig) -> ActiveChange:
    everyone = tuple(instance_name(i) for i in range(cfg.instances))
    hosts = () if change.kind == "feature_flag" else tuple(change.hosts or everyone)
    leak = 0.0
    if change.fault is not None:
        leak = change.fault.magnitude or DEFAULT_MAGNITUDE[change.fault.type]
    made = ActiveChange(change.id or change_id, change.kind, epoch, hosts,
                        tuple((change.settings or {}).items()), change.version, leak,
                        change.pause_seconds, change.warmup_requests, change.flag,
                        change.share if change.enabled else 0.0, change.message,
                        benign=change.benign)
    return dataclasses.replace(made, settled_epoch=epoch + rollout_bound_s(made, cfg))


def setting(cfg: StorefrontConfig, path: str) -> Any:
    node: Any = cfg
    for key in path.split("."):
        node = getattr(node, key)
    return node


def applied(cfg: StorefrontConfig, changes: Sequence[ActiveChange], host: str) -> StorefrontConfig:
    """An instance's settings once ``changes`` (in time order) have reached it."""
    for change in changes:
        if change.kind == "config_push" and host in change.hosts:
            cfg = with_settings(cfg, dict(change.settings))
    return cfg


def deployed(cfg: StorefrontConfig, changes: Sequence[ActiveChange], host: str) -> Build:
    """The build ``host`` runs once ``changes`` (in time order, rollouts finished) are made."""
    build = Build(cfg.version)
    for change in changes:
        if change.kind == "deploy" and host in change.hosts:
            build = change.build()
    return build


def flag_shares(changes: Sequence[ActiveChange]) -> dict[str, float]:
    """Each flag's share once ``changes`` (in time order) are made."""
    return {c.flag: c.share for c in changes if c.kind == "feature_flag" and c.flag}


def rollout_bound_s(change: ActiveChange, cfg: StorefrontConfig) -> float:
    """How long a change may take to reach its last host, at most: a deploy's steps each wait
    for the health checks to take the host out, its requests to finish (the load balancer's
    timeout at most), the JVM's restart, and the pause; the rest take effect at once."""
    if change.kind != "deploy":
        return 0.0
    checks = cfg.health_check
    step = (checks.interval_s * (checks.fails_to_remove + 1) + cfg.lb_timeout_ms / 1000.0
            + 1.0 + cfg.heap.restart_seconds + change.warmup_requests / DEPLOY_WARMUP_RPS
            + checks.interval_s * (checks.passes_to_add + 1) + change.pause_s)
    return step * len(change.hosts)


def needs_restart(old: StorefrontConfig, new: StorefrontConfig) -> bool:
    """Whether ``new`` differs from ``old`` in more than what applies live."""
    live = old
    for path in PUSH_LIVE:
        live = with_settings(live, {path: setting(new, path)})
    return live != new


Diff = list[tuple[str, Any, Any]]  # (what, old, new): a setting, the version, or a flag
# (time, host or "", change, what changed, whether it restarts, when its step began)
Record = Callable[[float, str, ActiveChange, Diff, bool, float], None]


def config_push(env: Any, instance: AppInstance, change: ActiveChange, at_s: float,
                record: Record) -> Generator[Any, Any, None]:
    """The push reaches ``instance`` at ``at_s``: it takes it live, or restarts to take it."""
    yield env.timeout(at_s)
    old = instance.cfg
    new = with_settings(old, dict(change.settings))
    diff = [(path, setting(old, path), setting(new, path)) for path, _ in change.settings]
    restart = needs_restart(old, new)
    record(env.now, instance.name, change, diff, restart, env.now)
    instance.push_live(new)
    if restart:
        yield from instance.graceful_restart(
            new, instance.build, "config push: graceful restart to apply settings")


def deploy(env: Any, instances: Sequence[AppInstance], change: ActiveChange, at_s: float,
           record: Record) -> Generator[Any, Any, None]:
    """A rolling update: each host in turn is drained, restarted into the build and back in
    rotation before the pause and the next one. Each host's document is written when it is
    back (the CD tool's "updated" line), with when its step began."""
    yield env.timeout(at_s)
    build = change.build()
    for step, instance in enumerate(instances):
        if step:
            yield env.timeout(change.pause_s)
        began = env.now
        old = instance.build.version
        yield from instance.graceful_restart(
            instance.cfg, build,
            f"deploy {change.change_id}: graceful restart into {build.version} "
            f"({step + 1}/{len(instances)})", change.warmup_requests)
        record(env.now, instance.name, change, [("version", old, build.version)], True, began)


def feature_flag(env: Any, flags: FeatureFlags, change: ActiveChange, at_s: float,
                 record: Record) -> Generator[Any, Any, None]:
    """The flag service switches ``change.flag`` for the share of shoppers it names."""
    yield env.timeout(at_s)
    flag = change.flag or ""
    old = flags.set(flag, change.share)
    record(env.now, "", change, [(flag, old, change.share)], False, env.now)


def change_summary(change: ActiveChange) -> str:
    """What a change sets, in a few words: ``db_pool.max_size=3``, ``version 2.14.0``,
    ``recommended_for_you 50%``."""
    if change.kind == "deploy":
        leak = f" (leaks {change.leak_mb:g} MB)" if change.leak_mb else ""
        return f"version {change.version}{leak}"
    if change.kind == "feature_flag":
        return f"{change.flag} {'off' if not change.share else f'{change.share * 100:g}%'}"
    return ", ".join(f"{path}={value}" for path, value in change.settings)
