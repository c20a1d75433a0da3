"""Queueing sanity: the worker pool as M/M/c must match the Erlang-C formula.

If contention is modelled right, Poisson arrivals and exponential service on c threads
give the textbook mean queue wait. This is how we trust the symptoms that emerge from it.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import simpy
from simpy.events import Timeout

from sim.resources.worker_pool import WorkerPool


def erlang_c_wait(arrival_rate: float, service_rate: float, servers: int) -> float:
    """Mean wait in queue (Wq) of an M/M/c queue."""
    a = arrival_rate / service_rate
    rho = a / servers
    top = a**servers / math.factorial(servers) / (1 - rho)
    bottom = sum(a**k / math.factorial(k) for k in range(servers)) + top
    return (top / bottom) / (servers * service_rate - arrival_rate)


def simulate_mmc(arrival_rate, service_rate, servers, customers, seed):
    env = simpy.Environment()
    rng = np.random.default_rng(seed)
    gaps = rng.exponential(1 / arrival_rate, customers)
    services = rng.exponential(1 / service_rate, customers)
    waits = np.empty(customers)
    arrivals = np.cumsum(gaps)

    def start(i):
        waits[i] = env.now - arrivals[i]
        Timeout(env, services[i]).callbacks.append(lambda _ev: pool.release())

    pool = WorkerPool(servers, accept_queue=customers, on_start=start)

    def source(env):
        for i in range(customers):
            yield env.timeout(arrivals[i] - env.now)
            assert pool.submit(i)

    env.process(source(env))
    env.run()
    warm = customers // 10
    return float(waits[warm:].mean())


@pytest.mark.parametrize("rho", [0.5, 0.7, 0.85])
def test_worker_pool_mean_queue_wait_matches_erlang_c(rho):
    servers, service_rate = 8, 5.0  # 8 threads, 200 ms mean service
    arrival_rate = rho * servers * service_rate
    expected = erlang_c_wait(arrival_rate, service_rate, servers)
    measured = np.mean([simulate_mmc(arrival_rate, service_rate, servers, 120_000, seed)
                        for seed in (1, 2, 3)])
    assert measured == pytest.approx(expected, rel=0.06), (measured, expected)


def test_erlang_c_formula_sanity():
    # M/M/1: Wq = rho / (mu - lambda)
    assert erlang_c_wait(0.5, 1.0, 1) == pytest.approx(1.0)
