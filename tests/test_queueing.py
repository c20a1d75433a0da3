"""Queueing sanity: the worker pool and the CPU as M/M/c must match the Erlang-C formula.

If contention is modelled right, Poisson arrivals and exponential service on c threads
give the textbook mean queue wait. This is how we trust the symptoms that emerge from it.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from sim.core.engine import Environment
from sim.model.resources.cpu import Cpu
from sim.model.resources.worker_pool import WorkerPool


def erlang_c_wait(arrival_rate: float, service_rate: float, servers: int) -> float:
    """Mean wait in queue (Wq) of an M/M/c queue."""
    a = arrival_rate / service_rate
    rho = a / servers
    top = a**servers / math.factorial(servers) / (1 - rho)
    bottom = sum(a**k / math.factorial(k) for k in range(servers)) + top
    return (top / bottom) / (servers * service_rate - arrival_rate)


def simulate_mmc(resource, arrival_rate, service_rate, servers, customers, seed):
    """Mean queue wait of M/M/c customers as processes, on the fast engine."""
    env = Environment()
    rng = np.random.default_rng(seed)
    arrivals = np.cumsum(rng.exponential(1 / arrival_rate, customers)).tolist()
    services = rng.exponential(1 / service_rate, customers).tolist()
    waits = np.empty(customers)
    if resource == "worker_pool":
        pool = WorkerPool(env, servers, accept_queue=customers)

        def customer(i):
            thread = pool.request()
            try:
                yield thread
                waits[i] = env.now - arrivals[i]
                yield env.timeout(services[i])
            finally:
                pool.release(thread)
    else:
        cpu = Cpu(env, servers)

        def customer(i):
            yield cpu.run(services[i])
            waits[i] = env.now - arrivals[i] - services[i]

    def source():
        for i in range(customers):
            yield env.timeout(arrivals[i] - env.now)
            env.process(customer(i))

    env.process(source())
    env.run()
    warm = customers // 10
    return float(waits[warm:].mean())


@pytest.mark.parametrize("resource", ["worker_pool", "cpu"])
@pytest.mark.parametrize("rho", [0.5, 0.7, 0.85])
def test_mean_queue_wait_matches_erlang_c(resource, rho):
    servers, service_rate = 8, 5.0  # 8 threads (cores), 200 ms mean service
    arrival_rate = rho * servers * service_rate
    expected = erlang_c_wait(arrival_rate, service_rate, servers)
    measured = np.mean([simulate_mmc(resource, arrival_rate, service_rate, servers, 100_000, seed)
                        for seed in (1, 2, 3)])
    assert measured == pytest.approx(expected, rel=0.06), (measured, expected)


def test_erlang_c_formula_sanity():
    # M/M/1: Wq = rho / (mu - lambda)
    assert erlang_c_wait(0.5, 1.0, 1) == pytest.approx(1.0)
