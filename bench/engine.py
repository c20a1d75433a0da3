"""Event throughput of ``sim.core.engine`` (from source and compiled) against ``simpy.Environment``.

Why: ``sim.core.engine`` replaces SimPy as the model's engine for speed, with the same event
order. The workload has the shape of a request: an arrivals process starts customers; each
customer does 5 timeouts, starts a responder process and waits on an event the responder
succeeds after its own timeout. 12 events per customer (arrival timeout, 2 process starts,
6 timeouts, the succeeded event, 2 process ends).

    python3 bench/engine.py [--customers 200000] [--rounds 3] [--compiled-dir DIR]

The compiled engine is ``sim.core.engine`` when it imports as an extension module (an install
with mypyc), or the one built in DIR (a scratch copy of the repo after
``python setup.py build_ext --inplace``: DIR/sim/engine.*.so). Engines alternate within
each round; the best round counts. All must agree on the final clock and checksum.
"""

from __future__ import annotations

import argparse
import gc
import importlib
import importlib.util
import random
import sys
import time
from collections.abc import Callable, Generator
from pathlib import Path
from types import ModuleType
from typing import Any

import simpy

ROOT = Path(__file__).resolve().parent.parent
EVENTS_PER_CUSTOMER = 12


def workload(env: Any, customers: int) -> Callable[[], float]:
    """Set up the processes; returns a function giving the checksum after the run."""
    rng = random.Random(1)
    delays = [rng.expovariate(1.0) for _ in range(4096)]
    gaps = [rng.expovariate(100.0) for _ in range(4096)]
    results: list[float] = []

    def responder(ev: Any, d: float) -> Generator[Any, Any, None]:
        yield env.timeout(d)
        ev.succeed(d)

    def customer(i: int) -> Generator[Any, Any, float]:
        for k in range(5):
            yield env.timeout(delays[(i * 5 + k) & 4095])
        ev = env.event()
        env.process(responder(ev, delays[(i * 7) & 4095]))
        value = yield ev
        return value  # type: ignore[no-any-return]

    def done(proc: Any) -> None:
        results.append(proc._value)

    def arrivals() -> Generator[Any, Any, None]:
        for i in range(customers):
            yield env.timeout(gaps[i & 4095])
            env.process(customer(i)).callbacks.append(done)

    env.process(arrivals())
    return lambda: sum(results) + env.now


def count_events(make_env: Callable[[], Any], customers: int) -> int:
    env = make_env()
    workload(env, customers)
    n = 0
    while True:
        try:
            env.step()
        except Exception as e:  # EmptySchedule
            if type(e).__name__ != "EmptySchedule":
                raise
            return n
        n += 1


def timed(make_env: Callable[[], Any], customers: int) -> tuple[float, float]:
    env = make_env()
    checksum = workload(env, customers)
    gc.collect()
    t0 = time.perf_counter()
    env.run()
    elapsed = time.perf_counter() - t0
    return elapsed, checksum()


def load_source_engine() -> ModuleType:
    spec = importlib.util.spec_from_file_location("_engine_from_source", ROOT / "sim/core/engine.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def load_compiled_engine(compiled_dir: str | None) -> ModuleType | None:
    if compiled_dir:
        sys.path.insert(0, str(Path(compiled_dir).resolve()))
    else:
        sys.path.insert(0, str(ROOT))
    module = importlib.import_module("sim.core.engine")
    if module.__file__ is None or module.__file__.endswith(".py"):
        return None
    return module


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--customers", type=int, default=200_000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--compiled-dir", help="a repo copy built with build_ext --inplace")
    args = parser.parse_args(argv)

    source = load_source_engine()
    compiled = load_compiled_engine(args.compiled_dir)
    engines: dict[str, Callable[[], Any]] = {
        "simpy.Environment": simpy.Environment,
        "sim.core.engine (source)": source.Environment,
    }
    if compiled is None:
        print("no compiled sim.core.engine found (see --compiled-dir): timing the source only")
    else:
        print(f"compiled: {compiled.__file__}")
        engines["sim.core.engine (compiled)"] = compiled.Environment

    for name, make_env in engines.items():
        n = count_events(make_env, 200)
        assert n == 200 * EVENTS_PER_CUSTOMER + 2, (name, n)  # + the arrivals process: start, end
    events = args.customers * EVENTS_PER_CUSTOMER + 2

    best: dict[str, float] = {}
    checks: dict[str, float] = {}
    for _ in range(args.rounds):
        for name, make_env in engines.items():
            elapsed, checksum = timed(make_env, args.customers)
            best[name] = min(best.get(name, elapsed), elapsed)
            checks[name] = checksum
    assert len(set(checks.values())) == 1, checks

    base = best["simpy.Environment"]
    print(f"{args.customers} customers, {events} events, best of {args.rounds} rounds")
    for name, elapsed in best.items():
        print(f"  {name:24s} {elapsed * 1e6 / events:6.3f} us/event   "
              f"{base / elapsed:5.2f}x simpy")
    return 0


if __name__ == "__main__":
    sys.exit(main())
