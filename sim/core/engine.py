"""A lean discrete-event engine: the part of SimPy 4.1's API the model uses, same event order.

Implemented (names and semantics as in ``simpy.core`` / ``simpy.events``): ``Environment``
(``now``, ``active_process``, ``schedule``, ``peek``, ``step``, ``run``, ``event``,
``timeout``, ``process``), ``Event`` (``callbacks``, ``succeed``, ``fail``, ``trigger``,
``triggered``, ``processed``, ``ok``, ``value``, ``defused``), ``Timeout``, ``Process``
(``is_alive``, ``target``, ``name``, ``interrupt``). Exceptions are SimPy's own
(``simpy.Interrupt``, ``simpy.core.EmptySchedule``, ``simpy.core.StopSimulation``) and
``PENDING`` is ``simpy.events.PENDING``, so model code catches the same classes on both
engines. No conditions (``&``, ``|``, ``AllOf``, ``AnyOf``) and no resources.

Differences from SimPy, on purpose: times are floats (``Environment(0).now`` is ``0.0``);
a ``Process`` waits on an event by putting *itself* (it is callable) in the event's
``callbacks``, not a bound ``_resume``; only this module's events may be yielded; a
schedule into the past (negative or NaN delay) raises ``ValueError``.

Event order. SimPy pops its heap by ``(time, priority, eid)``: URGENT=0 before NORMAL=1,
then ``eid``, a counter of every ``schedule`` call. Here an event whose computed time
``now + delay`` equals ``now`` (not merely ``delay == 0``: float rounding can make a tiny
delay land on ``now`` too, and SimPy then ties it the same way) goes to a FIFO, ``_urgent``
or ``_normal`` by priority; everything else (a later time, or a priority other than
URGENT/NORMAL, such as the -1 SimPy uses to re-queue a stopped ``until`` event) goes to the
heap as ``(time, priority, counter, event)``. The order equals SimPy's because:

1. The FIFOs only ever hold events for the current ``now``: the clock advances only when
   both are empty. Within one FIFO, insertion order is eid order.
2. A heap entry with time == ``now`` and priority URGENT/NORMAL was pushed while the clock
   was still before ``now`` (at push time its time was not ``now``), i.e. before every
   entry in the FIFOs, which were all scheduled once the clock had reached ``now``: its
   eid is smaller than theirs.
3. So the smallest ``(time, priority, eid)`` is: a heap top at ``now`` with priority <=
   URGENT (negative priorities beat the FIFOs outright, URGENT ties are won by the smaller
   eid); else the urgent FIFO's head; else a heap top at ``now`` with priority NORMAL (the
   smaller eid again); else the normal FIFO's head; else a heap top at ``now`` with a
   priority above NORMAL; and once all of those are gone, the heap top, whose time is
   > ``now``: the clock moves to it. Heap entries are ordered among themselves by the heap
   with SimPy's own key (the counter only has to increase, so it counts heap pushes only).

Hot paths (``Timeout``, ``succeed``, ``Process._resume``, the loop in ``run``) are written
out inline; the module is compiled with mypyc (setup.py) and runs the same from source.
"""

from __future__ import annotations

import heapq
from collections import deque
from collections.abc import Callable
from typing import Any, Final

from simpy.core import EmptySchedule, StopSimulation
from simpy.events import PENDING as _SIMPY_PENDING
from simpy.events import _describe_frame
from simpy.exceptions import Interrupt

__all__ = [
    "NORMAL", "PENDING", "URGENT", "EmptySchedule", "Environment", "Event", "Infinity",
    "Initialize", "Interrupt", "Interruption", "Process", "StopSimulation", "Timeout",
]

PENDING: Final[object] = _SIMPY_PENDING
"""The value of an event not yet triggered (SimPy's own sentinel)."""
URGENT: Final = 0
"""Priority of process starts and interrupts (as ``simpy.events.URGENT``)."""
NORMAL: Final = 1
"""Priority of every other event (as ``simpy.events.NORMAL``)."""
Infinity: Final = float("inf")
_heappush: Final = heapq.heappush  # Final: a C static when compiled, not a dict lookup
_heappop: Final = heapq.heappop


class Event:
    """An event that may happen at some point in time (``simpy.events.Event``)."""

    __slots__ = ("env", "callbacks", "_value", "_ok", "_defused")

    env: Environment
    callbacks: list[Callable[[Event], object]] | None
    _value: Any
    _ok: bool
    _defused: bool

    def __init__(self, env: Environment) -> None:
        self.env = env
        self.callbacks = []
        self._value = PENDING
        self._defused = False

    def __repr__(self) -> str:
        return f"<{self._desc()} object at {id(self):#x}>"

    def _desc(self) -> str:
        return f"{self.__class__.__name__}()"

    def __call__(self, event: Event) -> None:
        # Only a Process is a callback (it resumes). Declared here, not only in Process,
        # because mypyc miscompiles a native subclass that adds __call__ to its base.
        raise TypeError(f"{self} is not callable")

    @property
    def triggered(self) -> bool:
        """``True`` once the event has been triggered (its callbacks are about to run)."""
        return self._value is not PENDING

    @property
    def processed(self) -> bool:
        """``True`` once the event's callbacks have run."""
        return self.callbacks is None

    @property
    def ok(self) -> bool:
        """``True`` if the event succeeded; ``AttributeError`` before it is triggered."""
        return self._ok

    @property
    def defused(self) -> bool:
        """``True`` once a failed event's exception has been handled (it won't crash the run)."""
        return self._defused

    @defused.setter
    def defused(self, value: bool) -> None:
        self._defused = True  # as SimPy: any assignment defuses

    @property
    def value(self) -> Any:
        """The event's value; ``AttributeError`` before it is triggered."""
        if self._value is PENDING:
            raise AttributeError(f"Value of {self} is not yet available")
        return self._value

    def trigger(self, event: Event) -> None:
        """Trigger this event with *event*'s state and value (usable as a callback)."""
        self._ok = event._ok
        self._value = event._value
        self.env._normal.append(self)

    def succeed(self, value: Any = None) -> Event:
        """Mark the event successful with *value* and schedule it (NORMAL, now)."""
        if self._value is not PENDING:
            raise RuntimeError(f"{self} has already been triggered")
        self._ok = True
        self._value = value
        self.env._normal.append(self)  # now + 0 == now: the normal FIFO
        return self

    def fail(self, exception: BaseException) -> Event:
        """Mark the event failed with *exception* and schedule it (NORMAL, now)."""
        if self._value is not PENDING:
            raise RuntimeError(f"{self} has already been triggered")
        if not isinstance(exception, BaseException):
            raise TypeError(f"{exception} is not an exception.")
        self._ok = False
        self._value = exception
        self.env._normal.append(self)
        return self


class Timeout(Event):
    """An event that succeeds with *value* after *delay* (``simpy.events.Timeout``)."""

    __slots__ = ("_delay",)

    _delay: float

    def __init__(self, env: Environment, delay: float, value: Any = None) -> None:
        if delay < 0:
            raise ValueError(f"Negative delay {delay}")
        self.env = env
        self.callbacks = []
        self._value = value
        self._delay = delay
        self._ok = True
        self._defused = False
        now = env._now
        at = now + delay
        if at == now:
            env._normal.append(self)
        elif at > now:
            _heappush(env._queue, (at, NORMAL, env._eid, self))
            env._eid += 1
        else:
            raise ValueError(f"Negative delay {delay}")  # NaN

    def _desc(self) -> str:
        value_str = "" if self._value is None else f", value={self._value}"
        return f"{self.__class__.__name__}({self._delay}{value_str})"


class Initialize(Event):
    """Starts a process: URGENT, so it runs before NORMAL events due at the same time."""

    __slots__ = ()

    def __init__(self, env: Environment, process: Process) -> None:
        self.env = env
        self.callbacks = [process]
        self._value = None
        self._ok = True
        self._defused = False
        env._urgent.append(self)


class Interruption(Event):
    """Throws ``Interrupt(cause)`` into *process*, URGENT (``simpy.events.Interruption``)."""

    __slots__ = ("process",)

    process: Process

    def __init__(self, process: Process, cause: Any) -> None:
        env = process.env
        self.env = env
        self.callbacks = [self._interrupt]
        self._value = Interrupt(cause)
        self._ok = False
        self._defused = True
        if process._value is not PENDING:
            raise RuntimeError(f"{process} has terminated and cannot be interrupted.")
        if process is env._active_proc:
            raise RuntimeError("A process is not allowed to interrupt itself.")
        self.process = process
        env._urgent.append(self)

    def _interrupt(self, event: Event) -> None:
        process = self.process
        if process._value is not PENDING:
            return  # it ended (e.g. handling an earlier interrupt): nothing to do
        # It waits on its target: take it off the target's callbacks, then resume it now.
        target = process._target
        if target is None or target.callbacks is None:
            raise AttributeError(f"{process} is not waiting on a pending event")
        target.callbacks.remove(process)
        process._resume(self)


class Process(Event):
    """Runs a generator that yields events (``simpy.events.Process``).

    It is itself an event: it succeeds with the generator's return value, or fails with the
    exception that escaped it. It waits on an event by appending itself (it is callable) to
    the event's callbacks."""

    __slots__ = ("_generator", "_target")

    _generator: Any
    _target: Event | None

    def __init__(self, env: Environment, generator: Any) -> None:
        if not hasattr(generator, "throw"):
            raise ValueError(f"{generator} is not a generator.")
        self.env = env
        self.callbacks = []
        self._value = PENDING
        self._defused = False
        self._generator = generator
        self._target = Initialize(env, self)

    def _desc(self) -> str:
        return f"{self.__class__.__name__}({self.name})"

    @property
    def target(self) -> Event | None:
        """The event the process waits on; ``None`` once it has ended."""
        return self._target

    @property
    def name(self) -> str:
        """Name of the generator function (a mypyc-compiled generator has no ``__name__``:
        its type's name then, where SimPy's repr would raise)."""
        return str(getattr(self._generator, "__name__", type(self._generator).__name__))

    @property
    def is_alive(self) -> bool:
        """``True`` until the generator ends."""
        return self._value is PENDING

    def interrupt(self, cause: Any = None) -> None:
        """Throw ``simpy.Interrupt(cause)`` into the process (URGENT, at the current time).

        ``RuntimeError`` if it has ended or if it is the active process."""
        Interruption(self, cause)

    def __call__(self, event: Event) -> None:
        self._resume(event)

    def _resume(self, event: Event) -> None:
        """Resume the generator with *event*'s value (or throw its exception) until it
        yields an event not yet processed; if it ends, schedule this process (NORMAL, now)
        with its return value or its exception."""
        env = self.env
        env._active_proc = self
        generator = self._generator
        target: Event | None = event
        while True:
            try:
                if event._ok:
                    yielded = generator.send(event._value)
                else:
                    # The process must handle the failure (or fail itself): defuse it and
                    # throw in a copy of the exception, as SimPy does.
                    event._defused = True
                    failure = event._value
                    exc = type(failure)(*failure.args)
                    exc.__cause__ = failure
                    yielded = generator.throw(exc)
            except StopIteration as stop:
                self._ok = True
                self._value = stop.value
                env._normal.append(self)
                target = None
                break
            except BaseException as e:
                self._ok = False
                tb = e.__traceback__
                if tb is not None:
                    e.__traceback__ = tb.tb_next  # drop this frame, as SimPy does
                self._value = e
                env._normal.append(self)
                target = None
                break
            if not isinstance(yielded, Event):
                frame = getattr(generator, "gi_frame", None)  # none in a compiled generator
                descr = "" if frame is None else _describe_frame(frame)
                raise RuntimeError(f'\n{descr}Invalid yield value "{yielded}"') from None
            callbacks = yielded.callbacks
            if callbacks is not None:
                callbacks.append(self)  # wait for it
                target = yielded
                break
            event = yielded  # already processed: go on at once
        self._target = target
        env._active_proc = None


def _crash(event: Event) -> BaseException:
    """The exception ``step`` raises for a failed, undefused event: a copy, caused by it."""
    failure = event._value
    exc: BaseException = type(failure)(*failure.args)
    exc.__cause__ = failure
    return exc


def _stop_simulation(event: Event) -> None:
    """The callback ``run`` puts on its *until* event (``StopSimulation.callback``)."""
    if event._ok:
        raise StopSimulation(event._value)
    raise event._value


class Environment:
    """Execution environment: the clock and the event queue (``simpy.Environment``)."""

    __slots__ = ("_now", "_queue", "_urgent", "_normal", "_eid", "_active_proc")

    _now: float
    _queue: list[tuple[float, int, int, Event]]
    _urgent: deque[Event]
    _normal: deque[Event]
    _eid: int
    _active_proc: Process | None

    def __init__(self, initial_time: float = 0) -> None:
        self._now = float(initial_time)
        self._queue = []  # (time, priority, counter, event): later times, other priorities
        self._urgent = deque()  # URGENT events due now, in scheduling order
        self._normal = deque()  # NORMAL events due now, in scheduling order
        self._eid = 0
        self._active_proc = None

    @property
    def now(self) -> float:
        """The current simulation time."""
        return self._now

    @property
    def active_process(self) -> Process | None:
        """The process whose generator is running, if any."""
        return self._active_proc

    def process(self, generator: Any) -> Process:
        """Start a process for *generator* (it runs first at the current time, URGENT)."""
        return Process(self, generator)

    def timeout(self, delay: float = 0, value: Any = None) -> Timeout:
        """An event that succeeds with *value* after *delay*."""
        return Timeout(self, delay, value)

    def event(self) -> Event:
        """A new pending event."""
        return Event(self)

    def schedule(self, event: Event, priority: int = NORMAL, delay: float = 0) -> None:
        """Schedule *event* at ``now + delay`` with *priority*."""
        now = self._now
        at = now + delay
        if at == now:
            if priority == NORMAL:
                self._normal.append(event)
                return
            if priority == URGENT:
                self._urgent.append(event)
                return
        elif not at > now:
            raise ValueError(f"Negative delay {delay}")
        _heappush(self._queue, (at, priority, self._eid, event))
        self._eid += 1

    def peek(self) -> float:
        """Time of the next event, ``Infinity`` if there is none."""
        if self._urgent or self._normal:
            return self._now
        if self._queue:
            return self._queue[0][0]
        return Infinity

    def step(self) -> None:
        """Process the next event; ``EmptySchedule`` if there is none.

        (``run`` repeats this code inline: keep the two the same.)"""
        queue = self._queue
        urgent = self._urgent
        normal = self._normal
        if queue:
            entry = queue[0]
            if entry[0] != self._now:
                if urgent:
                    event = urgent.popleft()
                elif normal:
                    event = normal.popleft()
                else:
                    _heappop(queue)
                    self._now = entry[0]
                    event = entry[3]
            elif entry[1] <= URGENT or (entry[1] <= NORMAL and not urgent) or not (urgent or normal):
                _heappop(queue)
                event = entry[3]
            elif urgent:
                event = urgent.popleft()
            else:
                event = normal.popleft()
        elif urgent:
            event = urgent.popleft()
        elif normal:
            event = normal.popleft()
        else:
            raise EmptySchedule()
        callbacks = event.callbacks
        event.callbacks = None
        if callbacks is None:
            raise TypeError("'NoneType' object is not iterable")  # scheduled twice
        callback: Any = None
        try:
            for callback in callbacks:
                if isinstance(callback, Process):
                    callback._resume(event)
                else:
                    callback(event)
        except StopSimulation:
            # As SimPy: keep the remaining callbacks, re-queue the event first at this time.
            event.callbacks = callbacks[callbacks.index(callback) + 1:]
            self.schedule(event, -1)
            raise
        if not event._ok and not event._defused:
            raise _crash(event)

    def run(self, until: Any = None) -> Any:
        """Process events until *until*: ``None`` (no events left), an ``Event`` (it has
        been processed; returns its value) or a time (stop before the NORMAL events due at
        that time; stop event scheduled URGENT at ``until - now`` as SimPy does)."""
        stop: Event | None = None
        if until is not None:
            if isinstance(until, Event):
                if until.callbacks is None:
                    return until.value
                stop = until
            else:
                at = float(until)
                if at <= self._now:
                    shown = until if isinstance(until, int) else at
                    raise ValueError(f"until ({shown}) must be greater than the current simulation time")
                stop = Event(self)
                stop._ok = True
                stop._value = None
                self.schedule(stop, URGENT, at - self._now)
            stop_callbacks = stop.callbacks
            assert stop_callbacks is not None
            stop_callbacks.append(_stop_simulation)

        queue = self._queue
        urgent = self._urgent
        normal = self._normal
        try:
            while True:
                # --- step(), inline ---
                if queue:
                    entry = queue[0]
                    if entry[0] != self._now:
                        if urgent:
                            event = urgent.popleft()
                        elif normal:
                            event = normal.popleft()
                        else:
                            _heappop(queue)
                            self._now = entry[0]
                            event = entry[3]
                    elif entry[1] <= URGENT or (entry[1] <= NORMAL and not urgent) or not (urgent or normal):
                        _heappop(queue)
                        event = entry[3]
                    elif urgent:
                        event = urgent.popleft()
                    else:
                        event = normal.popleft()
                elif urgent:
                    event = urgent.popleft()
                elif normal:
                    event = normal.popleft()
                else:
                    raise EmptySchedule()
                callbacks = event.callbacks
                event.callbacks = None
                if callbacks is None:
                    raise TypeError("'NoneType' object is not iterable")
                callback: Any = None
                try:
                    for callback in callbacks:
                        if isinstance(callback, Process):
                            callback._resume(event)
                        else:
                            callback(event)
                except StopSimulation:
                    event.callbacks = callbacks[callbacks.index(callback) + 1:]
                    self.schedule(event, -1)
                    raise
                if not event._ok and not event._defused:
                    raise _crash(event)
        except StopSimulation as exc:
            return exc.args[0]
        except EmptySchedule:
            if stop is not None:
                assert not stop.triggered
                raise RuntimeError(
                    f'No scheduled events left but "until" event was not triggered: {stop}'
                ) from None
        return None
