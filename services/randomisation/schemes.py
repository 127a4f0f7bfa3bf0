"""Randomisation in the database: a trial's scheme, allocation inside the enrolment transaction, what
each caller may see of an allocation, and the emergency code-break.

The scheme's row is locked (FOR UPDATE) by every allocation, after the enrolment has taken its place
under the targets, so simultaneous enrolments take sequence numbers one at a time: none twice (the
database's unique key backs that), none skipped, every block filled in order.
"""

from __future__ import annotations

import secrets
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from models import Allocation, Application, RandomisationScheme, Trial
from services.audit import note
from services.errors import Conflict, FieldError, InvalidInput, NotFound
from services.events.catalogue import AllocationUnblinded, ApplicationAllocated
from services.events.outbox import add_event
from services.randomisation.blocks import Arm
from services.randomisation.design import (
    SITE,
    Allocated,
    Exhausted,
    ListEntry,
    ListError,
    Scheme,
    allocate,
    parse_list,
)
from services.randomisation.draws import SEED_BYTES
from services.randomisation.minimisation import Factor, tally
from services.schemas.api import AllocationOut, ConsortArm
from services.schemas.randomisation import ArmOut, FactorOut, RandomisationIn, RandomisationOut
from services.tokens import Caller
from services.trials.registry import registry_arms

MAX_BLOCK = 100


def scheme_of(row: RandomisationScheme) -> Scheme:
    """The pure scheme a row stores, its secret included."""
    return Scheme(
        method=row.method,  # type: ignore[arg-type]
        arms=tuple(Arm(arm["arm_id"], int(arm["ratio"])) for arm in row.arms),
        strata=tuple(row.strata),
        block_sizes=tuple(row.block_sizes),
        factors=tuple(Factor(factor["variable"], float(factor["weight"])) for factor in row.factors),
        probability=row.probability,
        imbalance=row.imbalance,  # type: ignore[arg-type]
        seed=bytes.fromhex(row.secret["seed"]),
        listed=tuple(ListEntry(int(seq), stratum, arm) for seq, stratum, arm in row.secret.get("list", [])),
    )


def _arms(trial: Trial, body: RandomisationIn) -> list[dict[str, Any]]:
    """The arms as sent, or the registry record's, 1:1, labelled from the record where the ids match."""
    from_registry = {arm.arm_id: arm.label for arm in registry_arms(trial.registry_record)}
    if body.arms is not None:
        return [
            {"arm_id": arm.arm_id, "ratio": arm.ratio, "label": arm.label or from_registry.get(arm.arm_id)}
            for arm in body.arms
        ]
    if len(from_registry) < 2:
        raise InvalidInput.of("arms", "the trial's registry record names fewer than two arms: send them")
    return [{"arm_id": arm_id, "ratio": 1, "label": label} for arm_id, label in from_registry.items()]


def _check_method(body: RandomisationIn, ratio_sum: int) -> None:
    """What each method needs, and what it does not take: 422 naming the field."""
    if body.method == "minimisation":
        if not body.factors:
            raise InvalidInput.of("factors", "minimisation needs at least one factor")
        for name, given in (
            ("strata", body.strata),
            ("block_sizes", body.block_sizes),
            ("list", body.listed),
        ):
            if given:
                raise InvalidInput.of(name, "only permuted blocks take it; minimisation balances the factors")
        return
    if body.factors:
        raise InvalidInput.of("factors", "only minimisation takes factors; permuted blocks take strata")
    if body.listed is not None:
        if body.block_sizes:
            raise InvalidInput.of("block_sizes", "an uploaded list fixes its own blocks")
        return
    if not body.block_sizes:
        raise InvalidInput.of("block_sizes", f"permuted blocks need block sizes, multiples of {ratio_sum}")
    for size in body.block_sizes:
        if size < ratio_sum or size % ratio_sum or size > MAX_BLOCK:
            raise InvalidInput.of(
                "block_sizes", f"{size} is not a multiple of the ratio sum {ratio_sum} (at most {MAX_BLOCK})"
            )


def configure(session: Session, by: str, trial: Trial, body: RandomisationIn) -> RandomisationScheme:
    """Set the trial's scheme with a new seed and its commitment; refused (409) once anyone has been
    allocated under the current one."""
    row = session.get(RandomisationScheme, trial.trial_id, with_for_update=True)
    if row is not None and row.allocated:
        raise Conflict(
            f"{row.allocated} participant(s) were allocated under this scheme: it can no longer change"
        )
    arms = _arms(trial, body)
    _check_method(body, sum(int(arm["ratio"]) for arm in arms))
    scheme = Scheme(
        method=body.method,
        arms=tuple(Arm(arm["arm_id"], int(arm["ratio"])) for arm in arms),
        strata=tuple(body.strata),
        block_sizes=tuple(sorted(set(body.block_sizes))),
        factors=tuple(Factor(factor.variable, factor.weight) for factor in body.factors),
        probability=body.probability if body.method == "minimisation" else 0.85,
        imbalance=body.imbalance,
        seed=secrets.token_bytes(SEED_BYTES),
    )
    if body.listed is not None:
        try:
            listed = parse_list(body.listed, scheme)
        except ListError as exc:
            raise InvalidInput.of("list", str(exc)) from None
        scheme = Scheme(**{**scheme.__dict__, "listed": listed})
    if row is None:
        row = RandomisationScheme(trial_id=trial.trial_id)
        session.add(row)
    row.method, row.algorithm, row.arms = scheme.method, scheme.algorithm, arms
    row.strata, row.block_sizes = list(scheme.strata), list(scheme.block_sizes)
    row.factors = [{"variable": factor.variable, "weight": factor.weight} for factor in scheme.factors]
    row.probability, row.imbalance = scheme.probability, scheme.imbalance
    row.uploaded_list, row.commitment = bool(scheme.listed), scheme.commitment()
    row.secret = {"seed": scheme.drawn_from.hex()} | (
        {"list": [[entry.sequence, entry.stratum, entry.arm_id] for entry in scheme.listed]}
        if scheme.listed
        else {}
    )
    row.state, row.allocated = {"in_stratum": {}, "tallies": {}, "arms": {}}, 0
    row.created_at, row.created_by = datetime.now(UTC), by
    return row


def scheme_row(session: Session, trial_id: str) -> RandomisationScheme:
    row = session.get(RandomisationScheme, trial_id)
    if row is None:
        raise NotFound(f"trial {trial_id} has no randomisation scheme")
    return row


def scheme_view(row: RandomisationScheme) -> RandomisationOut:
    """The scheme as anyone allowed may see it: never its seed or list."""
    return RandomisationOut(
        trial_id=row.trial_id,
        method=row.method,  # type: ignore[arg-type]
        algorithm=row.algorithm,
        arms=[ArmOut(arm_id=arm["arm_id"], ratio=arm["ratio"], label=arm.get("label")) for arm in row.arms],
        strata=row.strata,
        block_sizes=row.block_sizes,
        factors=[FactorOut(variable=f["variable"], weight=f["weight"]) for f in row.factors],
        probability=row.probability,
        imbalance=row.imbalance,  # type: ignore[arg-type]
        list_uploaded=row.uploaded_list,
        commitment=row.commitment,
        allocated=row.allocated,
        created_at=row.created_at,
    )


def level_text(value: Any) -> str:
    """An observation as a stratum label writes it: `true`/`false`, whole numbers, enum values."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def levels_of(scheme: Scheme, site_id: str, observations: Mapping[str, Any]) -> dict[str, str]:
    """The participant's level of each stratification variable or factor; 422 naming the first one
    not yet known (enrolment waits until every one is)."""
    missing = [name for name in scheme.variables if name != SITE and observations.get(name) is None]
    if missing:
        raise InvalidInput(
            f"enrolment waits until {', '.join(missing)} is known: this trial's randomisation "
            f"{'stratifies' if scheme.method == 'permuted_blocks' else 'minimises'} by it; add it with PATCH",
            fields=[FieldError(("applicant", name), "needed to randomise") for name in missing],
        )
    return {name: site_id if name == SITE else level_text(observations[name]) for name in scheme.variables}


def allocate_at_enrolment(session: Session, application: Application) -> Allocation | None:
    """In the enrolment transaction, after its place was taken: the next allocation, if the trial
    randomises (None otherwise). 422 until every stratification factor is known; 409 when an uploaded
    list has no entry left for the participant's stratum."""
    row = session.get(RandomisationScheme, application.trial_id, with_for_update=True)
    if row is None:
        return None
    scheme = scheme_of(row)
    levels = levels_of(scheme, application.site_id, application.observations)
    state = row.state
    in_stratum: dict[str, int] = dict(state.get("in_stratum", {}))
    tallies: dict[str, dict[str, dict[str, int]]] = state.get("tallies", {})
    try:
        made = allocate(scheme, levels, row.allocated, in_stratum.get(scheme.stratum(levels), 0), tallies)
    except Exhausted as exc:
        raise Conflict(f"{exc}: upload a longer list before enrolling more in it") from None
    row.state = _counted(state, made, levels, scheme.method == "minimisation")
    row.allocated += 1
    allocation = Allocation(
        application_id=application.id,
        trial_id=application.trial_id,
        sequence=made.sequence,
        sealed={"arm_id": made.arm_id, "stratum": made.stratum, "position": made.position, "levels": levels},
        allocated_at=datetime.now(UTC),
    )
    session.add(allocation)
    add_event(
        session,
        ApplicationAllocated(sequence=made.sequence),
        trial_id=application.trial_id,
        site_id=application.site_id,
        application_id=application.id,
    )
    return allocation


def _counted(
    state: Mapping[str, Any], made: Allocated, levels: Mapping[str, str], minimising: bool
) -> dict[str, Any]:
    """The scheme's state after one more allocation, as a new value (the sealed column is rewritten)."""
    in_stratum = dict(state.get("in_stratum", {}))
    in_stratum[made.stratum] = made.position
    arms = dict(state.get("arms", {}))
    arms[made.arm_id] = arms.get(made.arm_id, 0) + 1
    tallies = {
        factor: {level: dict(arms_at) for level, arms_at in by_level.items()}
        for factor, by_level in state.get("tallies", {}).items()
    }
    if minimising:
        tally(tallies, levels, made.arm_id)
    return {"in_stratum": in_stratum, "tallies": tallies, "arms": arms}


def allocation_out(allocation: Allocation, caller: Caller) -> AllocationOut:
    """What `caller` may see of an allocation: the arm only when unblinded (or the code was broken)."""
    sealed = allocation.sealed
    shows_arm = caller.sees_arms or allocation.unblinded_at is not None
    return AllocationOut(
        sequence=allocation.sequence,
        stratum=sealed["stratum"],
        arm_id=sealed["arm_id"] if shows_arm else None,
        allocated_at=allocation.allocated_at,
        unblinded_at=allocation.unblinded_at,
    )


def allocations_of(session: Session, application_ids: Iterable[str]) -> dict[str, Allocation]:
    ids = list(application_ids)
    if not ids:
        return {}
    rows = session.scalars(select(Allocation).where(Allocation.application_id.in_(ids)))
    return {row.application_id: row for row in rows}


def unblind(session: Session, caller: Caller, application_id: str, reason: str) -> Allocation:
    """An emergency code-break (admin): the arm is revealed to everyone who sees the application,
    audited with its reason, and announced (`allocation.unblinded`). 409 if it was never allocated or
    already unblinded."""
    application = session.get(Application, application_id)
    if application is None or not caller.can_use_site(application.site_id):
        raise NotFound(f"no application {application_id} visible to this token")
    allocation = session.get(Allocation, application_id, with_for_update=True)
    if allocation is None:
        raise Conflict(
            "this application was not allocated an arm: it was not enrolled, or its trial does not randomise"
        )
    if allocation.unblinded_at is not None:
        raise Conflict(
            f"the code of this participant was already broken at {allocation.unblinded_at.isoformat()}"
        )
    allocation.unblinded_at, allocation.unblinded_by = datetime.now(UTC), caller.token_id
    note(
        session, "allocation", application_id, "unblind", {"reason": reason, "sequence": allocation.sequence}
    )
    add_event(
        session,
        AllocationUnblinded(sequence=allocation.sequence, by=caller.token_id),
        trial_id=application.trial_id,
        site_id=application.site_id,
        application_id=application_id,
    )
    return allocation


def allocated_by_arm(session: Session, trial_id: str, caller: Caller) -> list[ConsortArm]:
    """The CONSORT `allocated` row: per arm for callers who see arms, else the total alone; empty for a
    trial that does not randomise."""
    row = session.get(RandomisationScheme, trial_id)
    if row is None:
        return []
    if not caller.sees_arms:
        return [ConsortArm(arm_id=None, count=row.allocated)]
    counts = row.state.get("arms", {})
    return [ConsortArm(arm_id=arm["arm_id"], count=int(counts.get(arm["arm_id"], 0))) for arm in row.arms]
