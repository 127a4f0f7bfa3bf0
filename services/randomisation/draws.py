"""Reproducible random draws: HMAC-SHA256 of a secret seed over a label and a counter.

The same seed and label give the same numbers in any process, on any machine, in any Python: the
allocation list is a function of the seed, so the commitment over the seed fixes it, and a verifier who
later learns the seed can regenerate every arm. Without the seed, the numbers cannot be predicted.
"""

from __future__ import annotations

import hashlib
import hmac

SEED_BYTES = 32
_WORD = 2**64


class Draws:
    """One labelled stream of draws from a seed; each draw reads the next 64-bit word."""

    def __init__(self, seed: bytes, label: str) -> None:
        if len(seed) < 16:
            raise ValueError("a seed has at least 128 bits")
        self._key = seed
        self._label = label.encode()
        self._counter = 0

    def _word(self) -> int:
        message = self._label + b"|" + self._counter.to_bytes(8, "big")
        self._counter += 1
        return int.from_bytes(hmac.new(self._key, message, hashlib.sha256).digest()[:8], "big")

    def below(self, n: int) -> int:
        """A whole number in [0, n), uniform: words past the last whole multiple of n are drawn again."""
        if n < 1:
            raise ValueError("n must be at least 1")
        limit = _WORD - _WORD % n
        while True:
            word = self._word()
            if word < limit:
                return word % n

    def uniform(self) -> float:
        """A number in [0, 1) with 53 random bits, as Python's own floats have."""
        return (self._word() >> 11) / 2**53

    def weighted(self, choices: list[str], weights: list[int]) -> str:
        """One of `choices`, each as likely as its whole-number weight."""
        pick = self.below(sum(weights))
        for choice, weight in zip(choices, weights, strict=True):
            if pick < weight:
                return choice
            pick -= weight
        raise AssertionError("unreachable: pick < sum(weights)")
