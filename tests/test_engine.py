"""``sim.core.engine`` processes events in exactly ``simpy.Environment``'s order, with its semantics.

Random programs full of same-time ties run on both engines and must leave the same trace;
then exact timelines, SimPy style ``[(what, env.now), ...]``, each checked on both engines.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Generator
from typing import Any

import pytest
import simpy
from simpy.core import EmptySchedule, StopSimulation

from sim.core import engine

ENGINES = [pytest.param(simpy.Environment, id="simpy"), pytest.param(engine.Environment, id="engine")]

Trace = list[tuple[Any, ...]]


# --- random programs -------------------------------------------------------------------


class Program:
    """A random program of processes, run the same way on any engine; records a trace.

    All random choices come from one ``random.Random(seed)`` consumed in execution order, so
    the two engines make the same choices exactly as long as they run things in the same
    order; any difference shows up in the trace."""

    def __init__(self, make_env: Callable[[], Any], seed: int, delays: tuple[float, ...],
                 untils: tuple[int, ...], per: int) -> None:
        self.env = make_env()
        self.rng = random.Random(seed)
        self.delays = delays
        self.untils = untils  # run(until=...) goes to a multiple of 1/per, a few ahead
        self.per = per
        self.trace: Trace = []
        self.procs: dict[str, Any] = {}
        self.pending: list[Any] = []  # events nobody has triggered yet
        self.triggered: list[Any] = []  # events triggered (maybe processed)
        self.n = 0

    def note(self, name: str, *what: Any) -> None:
        self.trace.append((name, *what, self.env.now))

    def spawn(self) -> Any:
        name = f"p{self.n}"
        self.n += 1
        proc = self.env.process(self.body(name, self.rng.randrange(3, 12)))
        self.procs[name] = proc
        return proc

    def body(self, name: str, steps: int) -> Generator[Any, Any, str]:
        env, rng = self.env, self.rng
        me = self.procs[name]
        self.note(name, "start", env.active_process is me)
        for k in range(steps):
            action = rng.randrange(10)
            try:
                if action <= 2:
                    value = yield env.timeout(rng.choice(self.delays), value=k)
                    self.note(name, "timeout", value)
                elif action == 3:
                    ev = env.event()
                    self.pending.append(ev)
                    value = yield ev
                    self.note(name, "got", value)
                elif action == 4 and self.pending:
                    ev = self.pending.pop(rng.randrange(len(self.pending)))
                    if rng.random() < 0.7:
                        ev.succeed(f"{name}:{k}")
                    else:
                        ev.fail(ValueError(f"{name} fails an event at {k}"))
                    self.triggered.append(ev)
                    self.note(name, "triggered", ev.ok)
                    if rng.random() < 0.3:
                        value = yield ev  # triggered, not processed yet
                        self.note(name, "waited for what it triggered", value)
                elif action == 5 and self.triggered:
                    ev = rng.choice(self.triggered)
                    self.note(name, "yields a triggered event", ev.processed)
                    value = yield ev
                    self.note(name, "got it", value)
                elif action == 6 and self.n < 20:
                    child = self.spawn()
                    self.note(name, "spawned", child.is_alive)
                    if rng.random() < 0.6:
                        value = yield child
                        self.note(name, "child returned", value)
                elif action == 7:
                    others = [p for p in self.procs.values() if p is not me]
                    if others:
                        victim = rng.choice(others)
                        try:
                            victim.interrupt(f"{name}:{k}")
                            self.note(name, "interrupts", victim.is_alive)
                        except RuntimeError:
                            self.note(name, "cannot interrupt", victim.is_alive)
                elif action == 8:
                    others = [p for p in self.procs.values() if p is not me]
                    if others:
                        other = rng.choice(others)
                        self.note(name, "waits for another", other.triggered, other.processed)
                        value = yield other
                        self.note(name, "other returned", value)
                else:
                    value = yield env.timeout(0, value="zero")
                    self.note(name, "zero", value)
            except simpy.Interrupt as interrupt:
                self.note(name, "interrupted", interrupt.cause, env.active_process is me)
            except ValueError as e:
                self.note(name, "caught", str(e))
        if rng.random() < 0.15:
            raise ValueError(f"{name} failed")
        return f"{name} done"

    def crashed(self, e: Exception) -> None:
        # other messages hold ids (reprs of events)
        self.note("driver", "crash", type(e).__name__, str(e) if type(e) is ValueError else "")

    def run(self) -> Trace:
        env, rng = self.env, self.rng
        for _ in range(rng.randrange(1, 5)):
            self.spawn()
        for _ in range(40):
            mode = rng.randrange(10)
            try:
                if mode <= 3:
                    # (SimPy stops at now + (until - now): not always == until in floats)
                    until = (round(env.now * self.per) + rng.choice(self.untils)) / self.per
                    env.run(until=until)
                    self.note("driver", "ran until", until, env.peek())
                elif mode == 4:
                    for _ in range(rng.randrange(1, 12)):
                        env.step()
                    self.note("driver", "stepped", env.peek())
                elif mode == 5:
                    target = rng.choice(list(self.procs.values()) + self.triggered)
                    value = env.run(until=target)
                    shown = repr(value) if isinstance(value, BaseException) else value
                    self.note("driver", "ran until an event", shown, target.processed)
                elif mode == 6:
                    env.run()
                    self.note("driver", "ran out", env.peek())
                elif mode == 7 and self.n < 20:
                    self.spawn()
                elif mode >= 8 and self.pending:
                    ev = self.pending.pop(rng.randrange(len(self.pending)))
                    ev.succeed("from outside")  # wakes whoever waits on it
                    self.triggered.append(ev)
            except EmptySchedule:
                self.note("driver", "empty")
            except StopSimulation as stop:
                # the stop event of a run(until=t) that crashed earlier fires inside step()
                self.note("driver", "stopped by an old until", stop.args)
            except (ValueError, RuntimeError, AttributeError) as e:
                # an undefused failure crashes the run; "until" never triggered; SimPy's
                # AttributeError for an interrupt of a process whose resume a crash dropped
                self.crashed(e)
        while True:
            try:
                env.run()
                break
            except (ValueError, AttributeError) as e:
                self.crashed(e)
        self.note("driver", "end", env.peek())
        return self.trace


def compare(seed: int, delays: tuple[float, ...], untils: tuple[int, ...], per: int) -> Trace:
    expected = Program(simpy.Environment, seed, delays, untils, per).run()
    actual = Program(engine.Environment, seed, delays, untils, per).run()
    if actual != expected:
        i = next((i for i, (e, a) in enumerate(zip(expected, actual, strict=False)) if e != a),
                 min(len(expected), len(actual)))
        pytest.fail(f"seed {seed}: traces differ at entry {i}:\n simpy  {expected[max(i - 3, 0):i + 2]}"
                    f"\n engine {actual[max(i - 3, 0):i + 2]}")
    return actual


def feature_counts(traces: list[Trace]) -> dict[str, int]:
    counts = {"interrupted": 0, "crash": 0, "caught": 0, "child returned": 0,
              "due at until": 0, "yields a triggered event": 0}
    for trace in traces:
        for i, entry in enumerate(trace):
            if entry[1] in counts:
                counts[entry[1]] += 1
            if entry[:2] == ("driver", "ran until") and any(
                    e[0] != "driver" and e[-1] == entry[2] for e in trace[i + 1:i + 4]):
                counts["due at until"] += 1  # a process ran at the stop time, after the stop
    return counts


@pytest.mark.parametrize("first", range(0, 1200, 200))
def test_random_programs_on_an_integer_grid_match_simpy(first):
    traces = [compare(seed, delays=(0, 1, 2, 3), untils=(1, 2, 3), per=1)
              for seed in range(first, first + 200)]
    counts = feature_counts(traces)
    assert sum(len(t) for t in traces) > 20_000
    assert min(counts.values()) >= 10, counts  # the programs do exercise every feature


@pytest.mark.parametrize("first", range(5000, 5600, 200))
def test_random_programs_with_float_near_ties_match_simpy(first):
    # 0.1 + 0.2 != 0.3: times that almost tie, and sums that land exactly on the grid
    traces = [compare(seed, delays=(0, 0.1, 0.2, 0.3, 1e-17), untils=(1, 3, 7), per=10)
              for seed in range(first, first + 200)]
    assert min(feature_counts(traces).values()) >= 5


# --- exact timelines, on both engines -----------------------------------------------------


@pytest.mark.parametrize("make_env", ENGINES)
def test_a_started_process_runs_before_normal_events_already_due(make_env):
    env = make_env()
    log: list[tuple[str, float]] = []

    def child():
        log.append(("child starts", env.now))
        yield env.timeout(0)
        log.append(("child after timeout(0)", env.now))

    def a():
        yield env.timeout(1)
        log.append(("a starts child", env.now))
        env.process(child())  # Initialize: URGENT at 1
        log.append(("a goes on", env.now))

    def b():
        yield env.timeout(1)  # NORMAL at 1, scheduled before the child's start
        log.append(("b", env.now))

    env.process(a())
    env.process(b())
    env.run()
    assert log == [("a starts child", 1), ("a goes on", 1), ("child starts", 1), ("b", 1),
                   ("child after timeout(0)", 1)]


@pytest.mark.parametrize("make_env", ENGINES)
def test_interrupts_are_urgent_in_order_and_unhook_the_process(make_env):
    env = make_env()
    log: list[tuple[Any, ...]] = []
    e = env.event()

    def victim():
        for _ in range(3):
            try:
                value = yield e
                log.append(("victim got", value, env.now))
                return "done"
            except simpy.Interrupt as i:
                log.append(("victim interrupted", i.cause, env.now, e.triggered, e.processed))

    def x():
        yield env.timeout(1)
        e.succeed("e")  # NORMAL at 1
        v.interrupt("first")  # URGENT at 1, after e was triggered: still runs first
        v.interrupt("second")
        log.append(("x", env.now))

    def y():
        yield env.timeout(1)  # NORMAL at 1, scheduled at 0 (before e): before e, after interrupts
        log.append(("y", env.now))

    v = env.process(victim())
    env.process(x())
    env.process(y())
    env.run()
    assert log == [
        ("x", 1),
        ("victim interrupted", "first", 1, True, False),
        ("victim interrupted", "second", 1, True, False),  # taken off e's callbacks again
        ("y", 1),
        ("victim got", "e", 1),  # resumed once only, by e
    ]
    assert v.value == "done" and v.target is None and not v.is_alive


@pytest.mark.parametrize("make_env", ENGINES)
def test_an_interrupt_of_a_process_that_ended_meanwhile_does_nothing(make_env):
    env = make_env()
    log: list[tuple[Any, ...]] = []

    def victim():
        try:
            yield env.timeout(5)
        except simpy.Interrupt as i:
            log.append(("interrupted", i.cause, env.now))
            return "stopped"

    def boss():
        yield env.timeout(1)
        v.interrupt("a")
        v.interrupt("b")  # when processed, the victim has ended: ignored, no error
        assert env.active_process is b
        with pytest.raises(RuntimeError, match="not allowed to interrupt itself"):
            b.interrupt()
        yield env.timeout(1)
        with pytest.raises(RuntimeError, match="has terminated and cannot be interrupted"):
            v.interrupt("c")
        log.append(("boss", env.now))

    v = env.process(victim())
    b = env.process(boss())
    env.run()
    assert log == [("interrupted", "a", 1), ("boss", 2)]
    assert v.value == "stopped"
    assert env.now == 5  # the victim's timeout still fires, resuming nobody


@pytest.mark.parametrize("make_env", ENGINES)
def test_an_undefused_failed_event_crashes_the_run_with_a_copy_of_its_exception(make_env):
    env = make_env()
    log: list[tuple[str, float]] = []
    boom = ValueError("boom", 42)

    def p():
        yield env.timeout(1)
        env.event().fail(boom)
        yield env.timeout(1)
        log.append(("p goes on", env.now))

    env.process(p())
    with pytest.raises(ValueError) as crash:
        env.run()
    assert crash.value is not boom and crash.value.args == ("boom", 42)
    assert crash.value.__cause__ is boom
    assert env.now == 1
    env.run()  # the crash left the rest scheduled
    assert log == [("p goes on", 2)]


@pytest.mark.parametrize("make_env", ENGINES)
def test_a_failed_process_is_thrown_into_the_process_waiting_for_it(make_env):
    env = make_env()
    log: list[tuple[Any, ...]] = []

    def child():
        yield env.timeout(1)
        raise KeyError("lost")

    def parent():
        c = env.process(child())
        try:
            yield c
        except KeyError as e:
            log.append(("parent caught", e.args, env.now, e is not c.value, e.__cause__ is c.value))
        assert c.defused and not c.ok and not c.is_alive
        return "ok"

    p = env.process(parent())
    env.run()  # defused: no crash
    assert log == [("parent caught", ("lost",), 1, True, True)]
    assert p.value == "ok"

    env2 = make_env()
    env2.process(_fails(env2))
    with pytest.raises(KeyError) as crash:
        env2.run()  # nobody waits: the failure crashes the run
    assert crash.value.args == ("lost",) and env2.now == 1


def _fails(env: Any) -> Generator[Any, Any, None]:
    yield env.timeout(1)
    raise KeyError("lost")


@pytest.mark.parametrize("make_env", ENGINES)
def test_bad_arguments_raise_as_in_simpy(make_env):
    env = make_env()
    env.run(until=2)
    for until in (2, 1, 1.5):
        with pytest.raises(ValueError, match="must be greater than the current simulation time"):
            env.run(until=until)
    with pytest.raises(ValueError, match="Negative delay"):
        env.timeout(-1)
    e = env.event()
    with pytest.raises(AttributeError):
        _ = e.value
    with pytest.raises(AttributeError):
        _ = e.ok
    assert not e.triggered and not e.processed
    e.succeed(3)
    assert e.triggered and not e.processed and e.ok and e.value == 3
    with pytest.raises(RuntimeError, match="has already been triggered"):
        e.succeed()
    with pytest.raises(RuntimeError, match="has already been triggered"):
        e.fail(ValueError())
    with pytest.raises(TypeError, match="is not an exception"):
        env.event().fail("not an exception")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="is not a generator"):
        env.process(lambda: None)  # type: ignore[arg-type]

    def bad():
        yield 5

    env.process(bad())
    with pytest.raises(RuntimeError, match='Invalid yield value "5"'):
        env.run()
    assert not e.processed  # the error stopped the run before it
    env.run()
    assert e.processed


@pytest.mark.parametrize("make_env", ENGINES)
def test_run_until_a_time_stops_before_the_normal_events_due_then(make_env):
    env = make_env()
    log: list[tuple[str, float]] = []

    def p(name, delay):
        yield env.timeout(delay)
        log.append((name, env.now))
        yield env.timeout(0)
        log.append((name + " after 0", env.now))

    env.process(p("a", 2))
    early = env.event()
    early.callbacks.append(lambda ev: log.append(("urgent, scheduled before the stop", env.now)))
    early._ok, early._value = True, None
    env.schedule(early, 0, 2)  # URGENT at 2, scheduled before run() schedules its stop
    env.process(p("b", 2))
    assert env.run(until=2) is None
    assert env.now == 2 and log == [("urgent, scheduled before the stop", 2)]
    assert env.peek() == 2
    env.run(until=3)
    assert log == [("urgent, scheduled before the stop", 2), ("a", 2), ("b", 2), ("a after 0", 2),
                   ("b after 0", 2)]
    assert env.now == 3 and env.peek() == 3  # SimPy re-queues the stop event (priority -1)
    env.run()
    assert env.peek() == float("inf")


@pytest.mark.parametrize("make_env", ENGINES)
def test_run_until_an_event(make_env):
    env = make_env()
    log: list[tuple[str, Any, float]] = []

    def p():
        yield env.timeout(3)
        return "p's value"

    def waiter(name, q):
        value = yield q
        log.append((name, value, env.now))

    q = env.process(p())
    env.process(waiter("w1", q))  # hooks on q after run() below hooked its stop callback
    assert env.run(until=q) == "p's value"
    # run stopped inside q's callbacks: w1's resume is kept and q re-queued first at 3
    assert env.now == 3 and log == [] and q.callbacks is not None and env.peek() == 3
    assert env.run(until=q) == "p's value"  # q is processed again: w1, then the stop
    assert log == [("w1", "p's value", 3)]
    env.process(waiter("w2", q))
    env.run()
    assert log == [("w1", "p's value", 3), ("w2", "p's value", 3)]
    assert env.run(until=q) == "p's value"  # processed for good: returns at once

    never = env.event()
    with pytest.raises(RuntimeError, match="No scheduled events left"):
        env.run(until=never)
    failing = env.event()
    key_error = KeyError("k")
    failing.fail(key_error)
    with pytest.raises(KeyError) as raised:
        env.run(until=failing)
    assert raised.value is key_error  # the event's own exception, not a copy


@pytest.mark.parametrize("make_env", ENGINES)
def test_a_delay_that_rounds_to_now_ties_like_a_zero_delay(make_env):
    env = make_env(1e16)  # 1e16 + 1 == 1e16
    log: list[tuple[str, float]] = []

    def logger(what: str) -> Callable[[Any], None]:
        return lambda ev: log.append((what, env.now))

    first = env.event()
    first.callbacks.append(logger("succeeded first"))
    first.succeed()
    env.timeout(1.0).callbacks.append(logger("timeout(1) lands on 1e16"))
    env.timeout(2.0).callbacks.append(logger("timeout(2)"))
    later = env.event()
    later.callbacks.append(logger("succeeded later"))
    later.succeed()
    env.run()
    assert log == [("succeeded first", 1e16), ("timeout(1) lands on 1e16", 1e16),
                   ("succeeded later", 1e16), ("timeout(2)", 1e16 + 2)]


@pytest.mark.parametrize("make_env", ENGINES)
def test_run_until_stops_at_now_plus_until_minus_now(make_env):
    env = make_env(1.2000000000000002)
    env.run(until=10.1)
    assert env.now == 1.2000000000000002 + (10.1 - 1.2000000000000002) == 10.099999999999998


@pytest.mark.parametrize("make_env", ENGINES)
def test_process_bookkeeping(make_env):
    env = make_env()
    seen: list[Any] = []

    def p():
        seen.append(env.active_process is proc)
        t = env.timeout(1)
        yield t
        seen.append(proc.target is t)
        return 7

    proc = env.process(p())
    assert proc.is_alive and not proc.triggered and env.active_process is None
    env.step()  # Initialize
    assert seen == [True] and env.active_process is None
    assert proc.target is not None and not proc.target.processed
    env.run()
    assert seen == [True, True] and proc.value == 7 and proc.ok and proc.target is None
    assert not proc.is_alive and proc.processed
    with pytest.raises(EmptySchedule):
        env.step()

    e = env.event()
    e.fail(ValueError("x"))
    assert not e.defused
    e.defused = True
    assert e.defused
    env.run()  # defused by hand: no crash


def test_our_environment_starts_at_a_float_time():
    assert engine.Environment().now == 0.0 and isinstance(engine.Environment(5).now, float)
    assert engine.Environment(5).peek() == float("inf")


class _CompiledStyleGenerator:
    """Like a mypyc-compiled generator: ``send`` and ``throw``, no ``__name__``/``gi_frame``."""

    def __init__(self, generator: Generator[Any, Any, Any]) -> None:
        self.generator = generator

    def send(self, value: Any) -> Any:
        return self.generator.send(value)

    def throw(self, exc: BaseException) -> Any:
        return self.generator.throw(exc)


def test_a_compiled_generator_has_no_name_or_frame_and_still_gets_sim_errors():
    env = engine.Environment()

    def short():
        yield env.timeout(1)

    def bad():
        yield "not an event"

    done = env.process(_CompiledStyleGenerator(short()))
    env.run()
    assert "_CompiledStyleGenerator" in repr(done)
    with pytest.raises(RuntimeError, match="has terminated and cannot be interrupted"):
        done.interrupt()
    env.process(_CompiledStyleGenerator(bad()))
    with pytest.raises(RuntimeError, match='Invalid yield value "not an event"'):
        env.run()
