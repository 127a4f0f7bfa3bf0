"""Reading what `tests.support.faulty_relay` wrote down: publishes per event, and leases of periodic jobs."""

from __future__ import annotations

import itertools
from collections import Counter
from dataclasses import dataclass
from pathlib import Path


def publishes(record: Path) -> Counter[str]:
    """How many broker publishes carried each event id, over every relay writing to `record`."""
    lines = record.read_text().splitlines() if record.exists() else []
    return Counter(line.split()[1] for line in lines if line.startswith("sent "))


@dataclass(frozen=True)
class Lease:
    job: str
    holder: str
    start: float
    end: float


def leases(record: Path) -> list[Lease]:
    """Every lease a periodic job was run under, oldest first."""
    lines = record.read_text().splitlines() if record.exists() else []
    taken = []
    for line in lines:
        if line.startswith("lease "):
            _, job, holder, start, end = line.split()
            taken.append(Lease(job, holder, float(start), float(end)))
    return sorted(taken, key=lambda lease: lease.start)


def overlapping(taken: list[Lease]) -> list[tuple[Lease, Lease]]:
    """Pairs of leases on one job held by two schedulers at once: a job run twice in one interval."""
    pairs = []
    for job in {lease.job for lease in taken}:
        runs = [lease for lease in taken if lease.job == job]
        for earlier, later in itertools.pairwise(runs):
            if later.holder != earlier.holder and later.start < earlier.end:
                pairs.append((earlier, later))
    return pairs
