"""Benchmark cases drawn from the seed: a window of a few hours, its causes and its red herrings.

A case is a scenario like any other (``to_scenario``): the causes are faults or changes the
model acts out, the red herrings are benign changes and anomalies (``benign`` changes,
``distractors.anomalies``). Case ``i`` draws from its own stream ``benchmark:case:i``, so the
first ten cases of ``--cases 20`` are the ten of ``--cases 10``.

What makes a case hard is what makes real ones hard, never noise: a change whose effect waits
for the traffic to rise; two causes at once; a benign deploy or push just before the real
cause; causes that look alike (a config push that shrinks the heap and a leaking build both
end in GC pressure); faults of a strength drawn from a range, some too weak to show.
Every change, causal or benign, gets an id of the same shape and a message from the same
pool, so nothing in the telemetry tells them apart but what the storefront did.
"""

from __future__ import annotations

import datetime as dt
import hashlib
from dataclasses import dataclass, field
from typing import Any, Final

from sim.config import FEATURE_FLAGS, Scenario, instance_name
from sim.core.rng import RandomStreams

BASE_DAY: Final = dt.date(2026, 6, 1)  # case i is simulated on BASE_DAY + i days (a Monday first)
CASE_HOURS: Final = 2.0
START_HOURS: Final = (7.0, 20.0)  # windows start in the working day, 5-minute steps
INSTANCES: Final = 4
INCIDENT_COUNTS: Final = ((0, 0.2), (1, 0.55), (2, 0.25))  # causes per case, and their weights
OVERLAP_SHARE: Final = 0.5  # of two-cause cases: the second starts while the first acts
HEAVY_CATALOGUE_SHARE: Final = 0.35  # cases whose database queries are slow every day (130 ms)
HEAVY_QUERY_MS: Final = 130.0
FIRST_CAUSE_AT: Final = (0.2, 0.6)  # of the window: a baseline before the first cause
DISTRACTORS: Final = ((0, 0.3), (1, 0.45), (2, 0.25))
NEAR_CAUSE_SHARE: Final = 0.5  # of a case's red herrings: 5-30 minutes before a cause
TRAFFIC_TPS: Final = 20.0  # the default traffic (the seed's)

# cause -> weight; a change-borne cause needs what makes it bite (see _cause)
CAUSES: Final = (
    ("payment_gateway_slowdown", 1.0), ("db_slow_queries", 1.0), ("memory_leak", 0.8),
    ("dependency_error_burst", 1.0), ("upstream_slowdown", 1.0), ("traffic_surge", 0.8),
    ("deploy", 1.2), ("config_push", 1.4),
)
# Feature flags are red herrings only: none of the storefront's flags breaks anything at its
# default capacities (the fraud check at 100 % with the heavy catalogue and a pool of 4 at
# lunch, the recommendations widget at 70 %: no symptom), since the upstreams it would load
# have no finite capacity in the model. ``feature_flag`` stays a kind a solver may answer.
# fault type -> (magnitude range, duration range in minutes); ranges reach below what shows
FAULT_RANGES: Final = {
    "payment_gateway_slowdown": ((40.0, 160.0), (8.0, 20.0)),
    "db_slow_queries": ((30.0, 140.0), (8.0, 20.0)),
    "memory_leak": ((0.8, 2.0), (18.0, 30.0)),
    "dependency_error_burst": ((0.3, 0.95), (5.0, 15.0)),
    "upstream_slowdown": ((40.0, 150.0), (8.0, 20.0)),
    "traffic_surge": ((1.5, 4.0), (10.0, 25.0)),  # what a surge breaks depends on the hour
}
MESSAGES: Final = {  # shared by causal and benign changes of a kind
    "deploy": ("release {v}: order history cache for repeat shoppers",
               "release {v}: dependency updates", "release {v}: checkout copy and tracking fixes",
               "release {v}: search ranking improvements"),
    "config_push": ("tune HikariCP pool for the new read replica", "capacity headroom tune-up",
                    "right-size instances after the load test", "align JVM settings with the base image"),
    "feature_flag": ("roll out {flag} to {pct}% of shoppers", "experiment {flag}: {pct}% of traffic"),
}
# bad settings (path, values, needs the heavy catalogue); benign ones keep room to spare
BAD_SETTINGS: Final = (
    ("db_pool.max_size", (2, 3, 4), True),
    ("cpu_cores", (1, 2), False),
    ("heap.max_mb", (1150.0, 1250.0, 1400.0), False),
)
BENIGN_SETTINGS: Final = (("accept_queue", (80, 100)), ("db_pool.max_size", (12, 14)),
                          ("worker_threads", (44, 48)))
BENIGN_WHY: Final = {
    "deploy": "a build without a relevant change, rolled out with the pipeline's warm-up",
    "config_push": "a setting raised, with room to spare: nothing ran short",
    "feature_flag": "a flag whose extra work fits in the spare capacity",
    "batch_job": "a batch job on the host; its CPU stayed below saturation",
    "cache_flush": "a database cache flush; queries were slower until traffic warmed it",
}
BENIGN_KINDS: Final = (("deploy", 0.3), ("config_push", 0.3), ("feature_flag", 0.15),
                       ("batch_job", 0.2), ("cache_flush", 0.1))


@dataclass(frozen=True)
class Case:
    """One case: its window and the scenario that acts it out (the causes and red herrings
    in it are known only here and in the answers)."""

    case_id: str
    index: int
    day: dt.date
    start: dt.datetime
    end: dt.datetime
    heavy_catalogue: bool
    faults: tuple[dict[str, Any], ...] = ()
    changes: tuple[dict[str, Any], ...] = ()  # causal and benign, in time order
    anomalies: tuple[dict[str, Any], ...] = ()
    causes: tuple[str, ...] = field(default=())  # the drawn cause kinds (for the case mix)

    def to_scenario(self, seed: int) -> Scenario:
        storefront: dict[str, Any] = {"instances": INSTANCES}
        if self.heavy_catalogue:
            storefront["db_server"] = {"query_ms_median": HEAVY_QUERY_MS}
        return Scenario.model_validate({
            "name": "storefront", "seed": seed * 100_003 + self.index,
            "window": {"start": _iso(self.start), "end": _iso(self.end)},
            "traffic": {"base_tps": TRAFFIC_TPS}, "storefront": storefront,
            "faults": list(self.faults), "changes": list(self.changes),
            "distractors": {"anomalies": list(self.anomalies)},
            "output": {"traces": {"enabled": True}},
        })


def _iso(t: dt.datetime) -> str:
    return t.strftime("%Y-%m-%dT%H:%M:%SZ")


def case_id(index: int) -> str:
    return f"case-{index + 1:03d}"


def opaque_id(prefix: str, seed: int, index: int, k: int) -> str:
    """An id that says nothing: causal and benign changes alike."""
    digest = hashlib.blake2b(f"{seed}:{index}:{k}".encode(), digest_size=3).hexdigest()
    return f"{prefix}-{digest}"


def draw_cases(n: int, seed: int, hours: float = CASE_HOURS) -> list[Case]:
    return [draw_case(i, seed, hours) for i in range(n)]


def _pick(gen: Any, weighted: tuple[tuple[Any, float], ...]) -> Any:
    weights = [w for _, w in weighted]
    total = sum(weights)
    return weighted[int(gen.choice(len(weighted), p=[w / total for w in weights]))][0]


def draw_case(index: int, seed: int, hours: float = CASE_HOURS) -> Case:
    gen = RandomStreams(seed, 0).generator(f"benchmark:case:{index}")
    day = BASE_DAY + dt.timedelta(days=index)
    midnight = dt.datetime(day.year, day.month, day.day, tzinfo=dt.UTC)
    start = midnight + dt.timedelta(minutes=5 * int(gen.integers(START_HOURS[0] * 12, START_HOURS[1] * 12)))
    end = start + dt.timedelta(hours=hours)
    heavy = bool(gen.random() < HEAVY_CATALOGUE_SHARE)  # a pool push makes it so (see _Drawing)
    n_causes = _pick(gen, INCIDENT_COUNTS)
    draw = _Drawing(gen, seed, index, heavy, start, end)
    at = start + (end - start) * float(gen.uniform(*FIRST_CAUSE_AT))
    kinds = []
    for k in range(n_causes):
        kind = _pick(gen, CAUSES)
        kinds.append(kind)
        length = draw.cause(kind, at)
        if k == 0 and n_causes == 2:
            if gen.random() < OVERLAP_SHARE:
                at = at + dt.timedelta(minutes=float(gen.uniform(2.0, max(3.0, length * 0.8))))
            else:
                at = at + dt.timedelta(minutes=length + float(gen.uniform(15.0, 30.0)))
    for _ in range(_pick(gen, DISTRACTORS)):
        draw.red_herring(_pick(gen, BENIGN_KINDS))
    return Case(case_id(index), index, day, start, end, draw.heavy, tuple(draw.faults),
                tuple(draw.finished_changes()), tuple(draw.anomalies), tuple(kinds))


class _Drawing:
    """A case's entries as they are drawn (cause times feed the red herrings' times)."""

    def __init__(self, gen: Any, seed: int, index: int, heavy: bool, start: dt.datetime,
                 end: dt.datetime) -> None:
        self.gen, self.seed, self.index, self.heavy = gen, seed, index, heavy
        self.start, self.end = start, end
        self.faults: list[dict[str, Any]] = []
        self.changes: list[dict[str, Any]] = []
        self.anomalies: list[dict[str, Any]] = []
        self.cause_times: list[dt.datetime] = []
        self.ids = 0

    def _id(self, prefix: str) -> str:
        self.ids += 1
        return opaque_id(prefix, self.seed, self.index, self.ids)

    def finished_changes(self) -> list[dict[str, Any]]:
        """The changes in time order, each deploy's version the next release after the one
        before it (releases only go forward), named in its message."""
        changes = sorted(self.changes, key=lambda c: c["at"])
        minor, patch = 13, 4  # the storefront's version, 2.13.4
        for change in changes:
            if change["kind"] == "deploy":
                if self.gen.random() < 0.25:
                    minor, patch = minor + 1, 0
                else:
                    patch += int(self.gen.integers(1, 4))
                change["version"] = f"2.{minor}.{patch}"
                change["message"] = change["message"].format(v=change["version"])
        return changes

    def _hosts(self, most: int) -> list[str]:
        n = int(self.gen.integers(1, most + 1))
        chosen = sorted(int(i) for i in self.gen.choice(INSTANCES, size=n, replace=False))
        return [instance_name(i) for i in chosen]

    def cause(self, kind: str, at: dt.datetime) -> float:
        """Adds the cause; returns how long it acts (minutes) for the next one's timing."""
        at = at.replace(second=0, microsecond=0)  # changes are made on the minute, by people
        self.cause_times.append(at)
        gen = self.gen
        if kind in FAULT_RANGES:
            (m_lo, m_hi), (d_lo, d_hi) = FAULT_RANGES[kind]
            minutes = round(float(gen.uniform(d_lo, d_hi)), 1)
            fault: dict[str, Any] = {"type": kind, "start": _iso(at), "duration_minutes": minutes,
                                     "magnitude": round(float(gen.uniform(m_lo, m_hi)), 2)}
            if kind == "memory_leak":
                fault["target"] = ",".join(self._hosts(2))
            elif kind == "upstream_slowdown":
                fault["target"] = ("inventory", "recommendations")[int(gen.integers(0, 2))]
            self.faults.append(fault)
            return minutes
        change: dict[str, Any] = {"id": self._id("chg"), "kind": kind, "at": _iso(at)}
        if kind == "deploy":
            change |= {"version": "", "hosts": self._hosts(2),
                       "fault": {"type": "memory_leak", "magnitude": round(float(gen.uniform(0.9, 2.0)), 2)},
                       "message": self._message(kind)}
            length = 25.0
        elif kind == "config_push":
            path, values, needs_heavy = BAD_SETTINGS[int(gen.integers(0, len(BAD_SETTINGS)))]
            self.heavy = self.heavy or needs_heavy  # a pool runs short where queries are slow
            hosts = self._hosts(INSTANCES)
            change |= {"settings": {path: values[int(gen.integers(0, len(values)))]},
                       **({"hosts": hosts} if len(hosts) < INSTANCES else {}),
                       "message": self._message(kind)}
            length = 30.0
        else:
            raise ValueError(f"not a cause the benchmark draws: {kind}")
        self.changes.append(change)
        return length

    def _message(self, kind: str, **fields: Any) -> str:
        options = MESSAGES[kind]
        text = options[int(self.gen.integers(0, len(options)))]
        return text.format(**fields) if fields else text

    def red_herring(self, kind: str) -> None:
        gen = self.gen
        window_min = (self.end - self.start).total_seconds() / 60.0
        if self.cause_times and gen.random() < NEAR_CAUSE_SHARE:
            target = self.cause_times[int(gen.integers(0, len(self.cause_times)))]
            at = target - dt.timedelta(minutes=float(gen.uniform(5.0, 30.0)))
            at = max(self.start + dt.timedelta(minutes=2), at)
        else:
            at = self.start + dt.timedelta(minutes=float(gen.uniform(0.05, 0.85)) * window_min)
        at = at.replace(second=0, microsecond=0)
        why = BENIGN_WHY[kind]
        if kind in ("batch_job", "cache_flush"):
            anomaly: dict[str, Any] = {"id": self._id("job"), "kind": kind, "at": _iso(at)}
            if kind == "batch_job":
                anomaly |= {"host": self._hosts(1)[0], "minutes": round(float(gen.uniform(8.0, 25.0)), 1),
                            "cores": int(gen.integers(3, 6))}
            self.anomalies.append(anomaly)
            return
        change: dict[str, Any] = {"id": self._id("chg"), "kind": kind, "at": _iso(at), "benign": why}
        if kind == "deploy":
            change |= {"version": "", "message": self._message(kind)}
            hosts = self._hosts(INSTANCES)
            if len(hosts) < INSTANCES:
                change["hosts"] = hosts
        elif kind == "config_push":
            path, values = BENIGN_SETTINGS[int(gen.integers(0, len(BENIGN_SETTINGS)))]
            hosts = self._hosts(INSTANCES)
            change |= {"settings": {path: values[int(gen.integers(0, len(values)))]},
                       **({"hosts": hosts} if len(hosts) < INSTANCES else {}),
                       "message": self._message(kind)}
        else:
            flag = sorted(FEATURE_FLAGS)[int(gen.integers(0, len(FEATURE_FLAGS)))]
            share = round(float(gen.uniform(0.1, 0.7)), 2)
            change |= {"flag": flag, "share": share,
                       "message": self._message(kind, flag=flag, pct=round(share * 100))}
        self.changes.append(change)


