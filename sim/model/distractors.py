"""Distractors: what happens on a normal day that looks like a lead and is not a cause.

Real investigations wade through changes and blips that had nothing to do with the
incident. Drawn per simulated UTC day from the scenario's seed (``distractors.per_day``,
``--distractors-per-day``), each from its own named stream, so a day's distractors do not
depend on the window's length, its splits or the worker count. Some land shortly before a
real incident of that day (the first thing an investigator finds when asking "what changed?").

Kinds, each acting through the model's own mechanisms:

- ``config_push``: a setting that has room to spare changed live (a bigger accept queue, a
  couple more pooled connections): a change document, nothing else.
- ``deploy``: a patch build rolled out to every host with the pipeline's warm-up: one short
  capacity dip per restart.
- ``batch_job``: a nightly job (a report export) holds some of one host's cores for a while:
  that host's CPU climbs, its requests a little slower.
- ``cache_flush``: the database's buffer cache is dropped (a maintenance VACUUM / restart of a
  replica): queries are slower until traffic warms it again.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from collections.abc import Generator, Sequence
from dataclasses import dataclass
from typing import Any

from sim.config import Scenario, StorefrontConfig, instance_name
from sim.core.clock import Window, resolve_time_expression
from sim.core.rng import RandomStreams
from sim.model.app_instance import AppInstance
from sim.model.changes import ActiveChange, rollout_bound_s
from sim.model.faults import ActiveFault
from sim.model.resources.db import DbServer

KINDS = ("config_push", "deploy", "batch_job", "cache_flush")
KIND_WEIGHTS = (0.3, 0.2, 0.3, 0.2)
NEAR_INCIDENT_SHARE = 0.35  # of a day's distractors, when it has an incident: just before one
NEAR_BEFORE_S = (5 * 60.0, 40 * 60.0)  # how long before the incident's start
# harmless live settings: (path, new value) with room to spare at any traffic of the defaults
BENIGN_SETTINGS = (("accept_queue", 80), ("db_pool.max_size", 12), ("worker_threads", 44))
BATCH_HOURS = (1.0, 5.0)  # nightly jobs run in the quiet hours
BATCH_MINUTES = (8.0, 25.0)
BATCH_CORES = (3, 6)  # of the host's cores, inclusive
BATCH_SLICE_S = 1.0  # the job's CPU comes in slices, sharing the cores with the JVM
WHY = {
    "config_push": "a live setting with room to spare at this traffic; nothing ran short",
    "deploy": "a patch build rolled out with the pipeline's warm-up; one short dip per restart",
    "batch_job": "a nightly batch job on the host; its CPU stayed below saturation",
    "cache_flush": "a database cache flush; queries were slower until traffic warmed it",
}


@dataclass(frozen=True)
class Distractor:
    """A benign anomaly in absolute time (a benign change is an ``ActiveChange`` instead)."""

    distractor_id: str
    kind: str  # batch_job | cache_flush
    start_epoch: float
    end_epoch: float
    host: str  # the app instance, or db-01
    cores: int = 0  # batch_job: how many of the host's cores it holds

    @property
    def span(self) -> tuple[float, float]:
        return self.start_epoch, self.end_epoch


def distractor_stream(seed: int, day: dt.date) -> Any:
    return RandomStreams(seed, 0).generator(f"distractors:{day.isoformat()}")


def draw_distractors(scenario: Scenario, window: Window, faults: Sequence[ActiveFault],
                     today: dt.date | None = None) -> tuple[list[ActiveChange], list[Distractor]]:
    """Every UTC day's distractors, inside the window: benign changes and benign anomalies,
    and the anomalies the scenario places itself (their times resolved against ``today``)."""
    per_day = scenario.distractors.per_day
    changes: list[ActiveChange] = []
    lo_all, hi_all = window.start.timestamp(), window.end.timestamp()
    anomalies = [a for a in planned_anomalies(scenario, today or window.end.date())
                 if a.start_epoch < hi_all and a.end_epoch > lo_all]
    if per_day <= 0:
        return [], anomalies
    for part in window.segments():
        day = part.start.date()
        midnight = dt.datetime(day.year, day.month, day.day, tzinfo=dt.UTC).timestamp()
        gen = distractor_stream(scenario.seed, day)
        n = int(per_day) + int(gen.random() < per_day - int(per_day))
        starts = [f.start_epoch for f in faults if midnight <= f.start_epoch < midnight + 86400]
        for k in range(n):
            kind = KINDS[int(gen.choice(len(KINDS), p=list(KIND_WEIGHTS)))]
            ident = f"{scenario.name}-d{day.strftime('%Y%m%d')}-{k + 1}"
            at = _when(gen, kind, midnight, starts)
            # drawn in full whether or not it falls in the window: the stream must advance alike
            if kind in ("batch_job", "cache_flush"):
                anomaly = _anomaly(gen, kind, ident, at, scenario.storefront)
                if anomaly.start_epoch < hi_all and anomaly.end_epoch > lo_all:
                    anomalies.append(anomaly)
            else:
                change = _benign_change(gen, kind, ident, at, day, k, scenario.storefront)
                if lo_all <= at < hi_all:
                    changes.append(change)
    return sorted(changes, key=lambda c: c.epoch), sorted(anomalies, key=lambda d: d.start_epoch)


def planned_anomalies(scenario: Scenario, today: dt.date) -> list[Distractor]:
    """The anomalies the scenario places itself (``distractors.anomalies``)."""
    return sorted((anomaly(a.kind, a.id, resolve_time_expression(a.at, today).timestamp(),
                           scenario.storefront, a.host, a.minutes * 60.0, a.cores)
                   for a in scenario.distractors.anomalies), key=lambda d: d.start_epoch)


def _when(gen: Any, kind: str, midnight: float, incident_starts: list[float]) -> float:
    """A minute of the day: the quiet hours for a batch job; else shortly before one of the
    day's incidents now and then, or any time in the working day."""
    if kind == "batch_job":
        return float(round(midnight + gen.uniform(*BATCH_HOURS) * 3600.0, -1))
    near = gen.random() < NEAR_INCIDENT_SHARE
    pick = gen.uniform(*NEAR_BEFORE_S)
    anywhere = gen.uniform(7.0, 22.0) * 3600.0
    if near and incident_starts:
        target = incident_starts[int(gen.integers(0, len(incident_starts)))]
        return float(round((target - pick) / 60.0) * 60.0)
    return float(round((midnight + anywhere) / 60.0) * 60.0)


def _anomaly(gen: Any, kind: str, ident: str, at: float, cfg: StorefrontConfig) -> Distractor:
    if kind == "cache_flush":
        return anomaly(kind, ident, at, cfg)
    host = instance_name(int(gen.integers(0, cfg.instances)))
    minutes = float(gen.uniform(*BATCH_MINUTES))
    cores = int(gen.integers(BATCH_CORES[0], BATCH_CORES[1] + 1))
    return anomaly(kind, ident, at, cfg, host, round(minutes * 60.0), cores)


def anomaly(kind: str, ident: str, at: float, cfg: StorefrontConfig, host: str = "",
            seconds: float = 0.0, cores: int = 0) -> Distractor:
    """A benign anomaly, drawn or placed: a cache flush is an instant on the database; a
    batch job leaves the JVM at least one of the host's cores."""
    if kind == "cache_flush":
        return Distractor(ident, kind, at, at + 1.0, "db-01")
    return Distractor(ident, kind, at, at + seconds, host, max(1, min(cfg.cpu_cores - 1, cores)))


def _benign_change(gen: Any, kind: str, ident: str, at: float, day: dt.date, k: int,
                   cfg: StorefrontConfig) -> ActiveChange:
    hosts = tuple(instance_name(i) for i in range(cfg.instances))
    if kind == "deploy":
        version = f"{cfg.version}-{day.strftime('%Y%m%d')}.{k + 1}"
        change = ActiveChange(ident, "deploy", at, hosts, version=version, pause_s=60.0,
                              warmup_requests=8000, message="patch build: dependency updates",
                              benign=WHY["deploy"])
        return dataclasses.replace(change, settled_epoch=at + rollout_bound_s(change, cfg))
    path, value = BENIGN_SETTINGS[int(gen.integers(0, len(BENIGN_SETTINGS)))]
    return ActiveChange(ident, "config_push", at, hosts, settings=((path, value),),
                        message="capacity headroom tune-up", benign=WHY["config_push"],
                        settled_epoch=at)


def batch_job(env: Any, instance: AppInstance, job: Distractor, origin_s: float
              ) -> Generator[Any, Any, None]:
    """The job's ``cores`` workers each burn CPU slices on the host until it ends."""
    start = max(0.0, job.start_epoch - origin_s)
    end = job.end_epoch - origin_s
    yield env.timeout(start)
    instance.announce(instance.name, "batch_job_started", f"{job.distractor_id}: {job.cores} cores")
    for _ in range(job.cores):
        env.process(_burn(env, instance, end))


def _burn(env: Any, instance: AppInstance, end: float) -> Generator[Any, Any, None]:
    while env.now < end:
        yield instance.cpu.run(BATCH_SLICE_S)


def cache_flush(env: Any, db: DbServer, flush: Distractor, origin_s: float,
                on_state: Any) -> Generator[Any, Any, None]:
    """The database's buffer cache is dropped: every page is read from disk again."""
    yield env.timeout(max(0.0, flush.start_epoch - origin_s))
    db.cache.chill()
    on_state("db-01", "cache_flushed", f"{flush.distractor_id}: buffer cache dropped")
