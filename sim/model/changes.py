"""Changes made to the running storefront: so far, config pushes.

A push reaches each of its hosts at its time. What the instance's components can take at
runtime they take at once (``AppInstance.push_live``); if anything else changed, the instance
restarts gracefully to read it (``AppInstance.graceful_restart``). Symptoms are whatever the
resources then do: a smaller pool is no problem until traffic needs more connections.
"""

from __future__ import annotations

from collections.abc import Callable, Generator
from dataclasses import dataclass
from typing import Any

from sim.config import PUSH_LIVE, ChangeConfig, StorefrontConfig, instance_name, with_settings
from sim.model.app_instance import AppInstance


@dataclass(frozen=True)
class ActiveChange:
    """A change resolved to absolute time (epoch seconds) and to the hosts it reaches."""

    change_id: str
    kind: str
    epoch: float
    hosts: tuple[str, ...]
    settings: tuple[tuple[str, Any], ...]  # (dotted path, new value), as written
    message: str | None = None


def active_change(change: ChangeConfig, change_id: str, epoch: float, instances: int) -> ActiveChange:
    hosts = tuple(change.hosts) if change.hosts else tuple(instance_name(i) for i in range(instances))
    return ActiveChange(change.id or change_id, change.kind, epoch, hosts,
                        tuple(change.settings.items()), change.message)


def setting(cfg: StorefrontConfig, path: str) -> Any:
    node: Any = cfg
    for key in path.split("."):
        node = getattr(node, key)
    return node


def applied(cfg: StorefrontConfig, changes: list[ActiveChange], host: str) -> StorefrontConfig:
    """An instance's settings once ``changes`` (in time order) have reached it."""
    for change in changes:
        if host in change.hosts:
            cfg = with_settings(cfg, dict(change.settings))
    return cfg


def needs_restart(old: StorefrontConfig, new: StorefrontConfig) -> bool:
    """Whether ``new`` differs from ``old`` in more than what applies live."""
    live = old
    for path in PUSH_LIVE:
        live = with_settings(live, {path: setting(new, path)})
    return live != new


Diff = list[tuple[str, Any, Any]]  # (setting, old, new)


def config_push(env: Any, instance: AppInstance, change: ActiveChange, at_s: float,
                record: Callable[[float, str, ActiveChange, Diff, bool], None]
                ) -> Generator[Any, Any, None]:
    """The push reaches ``instance`` at ``at_s``: it takes it live, or restarts to take it;
    ``record`` gets (time, host, change, what changed, whether it restarts)."""
    yield env.timeout(at_s)
    old = instance.cfg
    new = with_settings(old, dict(change.settings))
    diff = [(path, setting(old, path), setting(new, path)) for path, _ in change.settings]
    restart = needs_restart(old, new)
    record(env.now, instance.name, change, diff, restart)
    instance.push_live(new)
    if restart:
        yield from instance.graceful_restart(new)
