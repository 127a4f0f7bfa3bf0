"""Screening engine alone: applications per second on one core, per seed trial, beside hand-written Python.

    python bench/engine.py [--count 2000] [--rounds 15] [--seed 20261101] [--fuzz 20000] [--trial ID]...

For each seed trial (services/trials/seed_data/*.criteria.yaml) the criteria are compiled once and two
functions are timed over the same `--count` applicants, one call each, one process, gc on, rounds
interleaved so that both see the same machine load:

- engine: `CompiledCriteria.evaluate(observations, submitted_on)`, what the screening service calls: the
  reference date and age, every criterion's closure, a CriterionResult per criterion (outcome, missing
  variables, reviewer notes) and the decision;
- hand-written (the reference): the trial's function in tests/support/trial_references.py, plain Python over
  the observations with the same three-valued logic, answering the decision and each criterion's outcome.

Applicants start from the baseline of the trial's table of cases (tests/support/criteria_tables: eligible,
or as near as the trial allows), validated as intake stores them; the observations the criteria read are
varied around the criteria's own thresholds and window edges, or left out, the consent date too. The timed
set is drawn from those about 60 % eligible, 25 % ineligible and 15 % to review (as far as the trial
allows: ADMSCC sends every applicant with CLI to review). Before timing, every timed applicant
and `--fuzz` more per trial, varied harder, must get the same decision and outcomes from both; the run stops
on the first disagreement (exit status 2). A sample is a pass over the set, repeated to last >= 0.1 s; rates
from the best and the median of `--rounds` samples. Target: the engine at least 25 % of the hand-written
rate on the best samples (exit status 1 when a trial misses it).
"""

from __future__ import annotations

import argparse
import gc
import math
import random
import statistics
import sys
import time
from collections import Counter
from collections.abc import Callable, Iterator
from datetime import date, timedelta
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run as a script from anywhere

from pydantic import ValidationError

from bench.harness import BenchError, header, options, run, verdict
from services.eligibility import CompiledCriteria
from services.schemas.observations import Applicant
from services.schemas.vocabulary import VOCABULARY
from services.trials.criteria import bundled_document, compile_document
from tests.support.criteria_tables import TRIALS
from tests.support.trial_references import REFERENCES, Answer, Obs, months_back

SUBMITTED = date(2026, 11, 1)
TARGET = 0.25
SAMPLE_SECONDS = 0.1
MIX = {"eligible": 0.60, "ineligible": 0.25, "needs_review": 0.15}
SPECS = {v.name: v for v in VOCABULARY}
CONSENT_DATES = [date.fromisoformat(d) for d in (
    "2026-05-31", "2026-03-31", "2026-03-29", "2026-02-28", "2024-02-29",
    "2025-12-31", "2026-01-31", "2026-07-31", "2026-01-01", "2026-10-01",
)]  # fmt: skip

# The eligible applicant of each trial's table of cases (the best one ADMSCC's public criteria allow).
BASELINES = {trial.trial_id: trial.baseline for trial in TRIALS}


# --- applicants: the observations the criteria read, varied around their thresholds ---------------


def thresholds(node: Any, found: dict[str, list[Any]]) -> dict[str, list[Any]]:
    """Per variable, the constants and periods its comparisons in a rule tree use."""
    if isinstance(node, list):
        for item in node:
            thresholds(item, found)
    elif isinstance(node, dict) and "var" in node:
        for op, argument in node.items():
            if op != "var":
                found.setdefault(node["var"], []).extend(
                    argument if isinstance(argument, list) else [argument]
                )
    elif isinstance(node, dict):
        for value in node.values():
            thresholds(value, found)
    return found


def period_back(reference: date, period: dict[str, int]) -> date:
    ((unit, amount),) = period.items()
    if unit in ("days", "weeks"):
        return reference - timedelta(**{unit: amount})
    return months_back(reference, amount * (12 if unit == "years" else 1))


def random_value(rng: random.Random, name: str, constants: list[Any], reference: date) -> Any:
    """A value of the observation `name`, often just at, below or above one of the criteria's constants."""
    spec = SPECS[name]
    if spec.kind == "bool":
        return rng.random() < 0.5
    if spec.kind == "enum":
        return rng.choice(spec.values)
    if spec.kind == "date":
        periods = [c for c in constants if isinstance(c, dict)]
        if periods and rng.random() < 0.6:
            edge = period_back(reference, rng.choice(periods))
            return (edge + timedelta(days=rng.choice((-1, 0, 1)))).isoformat()
        return (reference - timedelta(days=rng.randint(0, 4000))).isoformat()
    low, high = spec.low, spec.high
    assert low is not None and high is not None
    numbers = [c for c in constants if isinstance(c, int | float) and not isinstance(c, bool)]
    if spec.kind == "int":
        if numbers and rng.random() < 0.6:
            return min(max(int(rng.choice(numbers)) + rng.choice((-1, 0, 1)), int(low)), int(high))
        return rng.randint(int(low), int(high))
    if numbers and rng.random() < 0.6:
        return min(max(rng.choice(numbers) + rng.choice((-1, -0.01, 0, 0, 0.01, 1)), low), high)
    return round(rng.uniform(low, min(high, 3 * max(numbers, default=high))), 2)


def varied(
    trial_id: str, compiled: CompiledCriteria, seed: str, intensities: tuple[float, ...]
) -> Iterator[dict[str, Any]]:
    """Endless applicants: the trial's eligible one, each read observation (and the consent date) changed
    or left out with a probability drawn from `intensities`, birth dates around the age limits."""
    rng = random.Random(seed)
    document = bundled_document(f"{trial_id}.criteria.yaml")
    constants = thresholds(document["criteria"], {})
    ages = [a for a in constants.get("age", []) if isinstance(a, int)] or [18, 80]
    constants["age_years"] = ages
    read = sorted(set(compiled.variables) - {"age"})
    if "age" in compiled.variables:  # read from birth_date, else age_years
        read = sorted({*read, "birth_date", "age_years"})
    base = Applicant.model_validate({**BASELINES[trial_id], "screening_id": "B"}).observations()
    while True:
        applicant = dict(base)
        intensity = rng.choice(intensities)
        if (r := rng.random()) < 0.1:
            applicant.pop("consent_date", None)
        elif r < 0.4:
            applicant["consent_date"] = rng.choice(CONSENT_DATES).isoformat()
        reference = (
            date.fromisoformat(applicant["consent_date"]) if "consent_date" in applicant else SUBMITTED
        )
        for name in read:
            if (r := rng.random()) < intensity / 3:
                applicant.pop(name, None)
            elif r < intensity and name == "birth_date":
                age = rng.choice(ages) + rng.choice((-1, 0, 1)) if rng.random() < 0.7 else rng.randint(5, 100)
                born = months_back(reference, 12 * age) + timedelta(days=rng.choice((-1, 0, 1, 40)))
                applicant[name] = born.isoformat()
            elif r < intensity:
                applicant[name] = random_value(rng, name, constants.get(name, []), reference)
        yield applicant


def timed_applicants(
    trial_id: str, compiled: CompiledCriteria, count: int, seed: int
) -> list[dict[str, Any]]:
    """`count` applicants as intake stores them (validated, canonical units), in about the MIX of decisions;
    once 20 x `count` have been drawn, whatever comes, for a trial that never gives some decision."""
    reference = REFERENCES[trial_id]
    left = {decision: round(share * count) for decision, share in MIX.items()}
    chosen: list[dict[str, Any]] = []
    for drawn, applicant in enumerate(varied(trial_id, compiled, f"{seed}:{trial_id}", (0.0, 0.02, 0.05))):
        try:
            stored = Applicant.model_validate({**applicant, "screening_id": "B"}).observations()
        except ValidationError:
            continue  # intake would refuse it (no age at all, say)
        decision = reference(stored, SUBMITTED)[0]
        if left[decision] > 0 or drawn >= 20 * count:
            left[decision] -= 1
            chosen.append(stored)
            if len(chosen) == count:
                return chosen
    raise AssertionError("unreachable: varied() is endless")


# --- agreement and timing -------------------------------------------------------------------------


def check_agreement(
    trial_id: str, compiled: CompiledCriteria, applicants: list[dict[str, Any]], what: str
) -> None:
    """The engine and the reference give each applicant the same decision and outcomes, or BenchError."""
    reference, ids = REFERENCES[trial_id], [c.id for c in compiled.criteria]
    for applicant in applicants:
        evaluation = compiled.evaluate(applicant, SUBMITTED)
        engine: Answer = (evaluation.decision, tuple(r.outcome for r in evaluation.results))
        hand = reference(applicant, SUBMITTED)
        if engine != hand:
            differing = [
                f"{c}: engine {e}, hand-written {h}"
                for c, e, h in zip(ids, engine[1], hand[1], strict=True)
                if e != h
            ]
            raise BenchError(
                f"{trial_id}: engine and hand-written disagree on a {what} applicant\n"
                f"  observations: {dict(sorted(applicant.items()))}\n"
                f"  decision: engine {engine[0]}, hand-written {hand[0]}\n  " + "\n  ".join(differing)
            )


def one_pass(evaluate: Callable[[Obs, date], Any], applicants: list[dict[str, Any]], passes: int) -> float:
    submitted = SUBMITTED
    started = time.perf_counter()
    for _ in range(passes):
        for applicant in applicants:
            evaluate(applicant, submitted)
    return time.perf_counter() - started


def rates(
    functions: dict[str, Callable[[Obs, date], Any]], applicants: list[dict[str, Any]], rounds: int
) -> dict[str, tuple[float, float]]:
    """(best, median) applications per second of each function; samples alternate, each in turn first."""
    passes = {
        name: max(1, math.ceil(SAMPLE_SECONDS / max(one_pass(f, applicants, 1), 1e-9)))
        for name, f in functions.items()
    }
    times: dict[str, list[float]] = {name: [] for name in functions}
    order = list(functions)
    for _ in range(rounds):
        for name in order:
            times[name].append(one_pass(functions[name], applicants, passes[name]) / passes[name])
        order.reverse()
    return {
        name: (len(applicants) / min(ts), len(applicants) / statistics.median(ts))
        for name, ts in times.items()
    }


def measure(args: argparse.Namespace) -> int:
    header(
        "Screening engine alone: applications per second on one core, beside hand-written Python", "pydantic"
    )
    print(
        f"{args.count} stored applicants per trial (seed {args.seed}), best (median) of {args.rounds} "
        f"interleaved samples of >= {SAMPLE_SECONDS} s; agreement checked on them and {args.fuzz} fuzzed ones"
    )
    rows = [("trial", "criteria", "elig/inel/review", "engine/s", "hand-written/s", "ratio", "vs 25%")]
    for trial_id in args.trial or list(REFERENCES):
        compiled = compile_document(bundled_document(f"{trial_id}.criteria.yaml"))
        applicants = timed_applicants(trial_id, compiled, args.count, args.seed)
        check_agreement(trial_id, compiled, applicants, "timed")
        fuzzed = varied(trial_id, compiled, f"fuzz:{args.seed}:{trial_id}", (0.05, 0.15, 0.4))
        check_agreement(trial_id, compiled, [next(fuzzed) for _ in range(args.fuzz)], "fuzzed")
        mix = Counter(REFERENCES[trial_id](a, SUBMITTED)[0] for a in applicants)
        gc.collect()
        found = rates({"engine": compiled.evaluate, "hand": REFERENCES[trial_id]}, applicants, args.rounds)
        (engine, engine_median), (hand, hand_median) = found["engine"], found["hand"]
        decisions = "/".join(str(mix[d]) for d in ("eligible", "ineligible", "needs_review"))
        ratio = f"{engine / hand:.1%} ({engine_median / hand_median:.1%})"
        rows.append(
            (
                trial_id,
                str(len(compiled.criteria)),
                decisions,
                f"{engine:,.0f} ({engine_median:,.0f})",
                f"{hand:,.0f} ({hand_median:,.0f})",
                ratio,
                verdict(engine / hand >= TARGET),
            )
        )
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    print()
    for row in rows:
        print(
            "  ".join(
                c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(row, widths, strict=True))
            )
        )
    return 0 if all(row[-1] == "PASS" for row in rows[1:]) else 1


if __name__ == "__main__":
    parser = options(__doc__)
    parser.add_argument("--count", type=int, default=2000, help="timed applicants per trial")
    parser.add_argument("--rounds", type=int, default=15, help="timed samples per function")
    parser.add_argument("--seed", type=int, default=20261101)
    parser.add_argument("--fuzz", type=int, default=20000, help="more applicants per trial, agreement only")
    parser.add_argument("--trial", action="append", choices=sorted(REFERENCES), help="default: all four")
    run(parser, measure)
