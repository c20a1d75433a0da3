"""Named random streams derived from the scenario seed.

Each component asks for its own stream by name, so adding a component (or drawing more
from one) never shifts another component's numbers. Draws come from numpy in blocks:
one Python call per draw, one numpy call per few thousand.
"""

from __future__ import annotations

import hashlib
import math
from typing import Protocol

import numpy as np

_BLOCK = 4096


def stream_key(name: str) -> int:
    """A stable integer for a stream name (Python's hash() is salted per process)."""
    return int.from_bytes(hashlib.blake2b(name.encode(), digest_size=8).digest(), "big")


class RandomStream:
    """Buffered draws from one numpy Generator."""

    __slots__ = ("gen", "_u", "_ui", "_n", "_ni", "_e", "_ei")

    def __init__(self, gen: np.random.Generator) -> None:
        self.gen = gen
        self._u = gen.random(_BLOCK).tolist()
        self._ui = 0
        self._n = gen.standard_normal(_BLOCK).tolist()
        self._ni = 0
        self._e = gen.standard_exponential(_BLOCK).tolist()
        self._ei = 0

    def random(self) -> float:
        """Uniform [0, 1)."""
        i = self._ui
        if i == _BLOCK:
            self._u = self.gen.random(_BLOCK).tolist()
            i = 0
        self._ui = i + 1
        return self._u[i]

    def normal(self) -> float:
        i = self._ni
        if i == _BLOCK:
            self._n = self.gen.standard_normal(_BLOCK).tolist()
            i = 0
        self._ni = i + 1
        return self._n[i]

    def exponential(self, mean: float) -> float:
        i = self._ei
        if i == _BLOCK:
            self._e = self.gen.standard_exponential(_BLOCK).tolist()
            i = 0
        self._ei = i + 1
        return self._e[i] * mean

    def lognormal(self, median: float, sigma: float) -> float:
        i = self._ni
        if i == _BLOCK:
            self._n = self.gen.standard_normal(_BLOCK).tolist()
            i = 0
        self._ni = i + 1
        return median * math.exp(sigma * self._n[i])


class StreamSource(Protocol):
    """Anything that hands out named streams (tests give exact ones)."""

    def stream(self, name: str) -> RandomStream: ...


class RandomStreams:
    """Factory of named streams for one (seed, segment)."""

    def __init__(self, seed: int, segment: int = 0) -> None:
        self.seed = seed
        self.segment = segment

    def generator(self, name: str) -> np.random.Generator:
        seq = np.random.SeedSequence([self.seed & 0xFFFFFFFF, self.segment, stream_key(name)])
        return np.random.default_rng(seq)

    def stream(self, name: str) -> RandomStream:
        return RandomStream(self.generator(name))
