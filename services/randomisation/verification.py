"""`accrual allocation verify` and `reveal`: prove that every allocation of a trial followed its scheme's
commitment, in order, none skipped or reordered.

The scheme's stored parameters and secret must hash to the commitment printed when it was set; then
the allocations, replayed in sequence order from the scheme alone (the generated list or the uploaded
one, or minimisation's draws over the tallies of those before), must give each participant the same
sequence number, stratum, place in the stratum and arm, and the scheme's running state must agree with
them. The first difference is named by sequence number and application, never by arm.

`reveal` hands an outsider (the safety board, an auditor), once allocation is complete, what the
commitment fixes and every allocation, so that they can check both with the documented algorithms alone
(services/randomisation/draws.py, blocks.py, minimisation.py, design.py) without trusting this service.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from models import Allocation
from services.audit import note
from services.randomisation.design import Exhausted, allocate
from services.randomisation.minimisation import tally
from services.randomisation.schemes import scheme_of, scheme_row


@dataclass(frozen=True)
class Verification:
    trial_id: str
    commitment: str
    allocations: int
    problem: str | None  # the first allocation that does not follow, or the commitment that fails

    @property
    def passed(self) -> bool:
        return self.problem is None


def verify_allocations(session: Session, trial_id: str) -> Verification:
    row = scheme_row(session, trial_id)
    scheme = scheme_of(row)
    allocations = list(
        session.scalars(
            select(Allocation).where(Allocation.trial_id == trial_id).order_by(Allocation.sequence)
        )
    )

    def found(problem: str | None) -> Verification:
        return Verification(trial_id, row.commitment, len(allocations), problem)

    if scheme.commitment() != row.commitment:
        return found("the stored scheme (parameters, seed or list) no longer hashes to its commitment")
    in_stratum: dict[str, int] = {}
    tallies: dict[str, dict[str, dict[str, int]]] = {}
    for index, allocation in enumerate(allocations):
        sealed, where = (
            allocation.sealed,
            f"sequence {allocation.sequence} (application {allocation.application_id})",
        )
        levels = {str(name): str(level) for name, level in sealed["levels"].items()}
        if set(levels) != set(scheme.variables):
            return found(f"{where}: its levels are not those of the scheme's variables")
        stratum = scheme.stratum(levels)
        try:
            expected = allocate(scheme, levels, index, in_stratum.get(stratum, 0), tallies)
        except Exhausted:
            return found(f"{where}: the list has no entry for it in its stratum")
        actual = (allocation.sequence, sealed["stratum"], sealed["position"], sealed["arm_id"])
        if actual[:3] != (expected.sequence, expected.stratum, expected.position):
            return found(
                f"{where}: expected sequence {expected.sequence}, place {expected.position} of its stratum: "
                "an allocation was skipped, reordered or added"
            )
        if actual[3] != expected.arm_id:
            return found(f"{where}: its arm is not the one the scheme gives at that place")
        in_stratum[stratum] = expected.position
        if scheme.method == "minimisation":
            tally(tallies, levels, expected.arm_id)
    if row.allocated != len(allocations):
        return found(f"the scheme counts {row.allocated} allocations, the trial has {len(allocations)}")
    return found(None)


def reveal(session: Session, trial_id: str) -> dict[str, Any]:
    """Everything an outsider needs to check the trial's allocations without this service: what the
    commitment fixes (the seed and any uploaded list among it) and every allocation in sequence order
    with its stratum, place and levels and arm. Audited: once shown, the seed predicts every later arm."""
    row = scheme_row(session, trial_id)
    in_order = select(Allocation).where(Allocation.trial_id == trial_id).order_by(Allocation.sequence)
    allocations = [
        {
            "sequence": allocation.sequence,
            "stratum": allocation.sealed["stratum"],
            "position": allocation.sealed["position"],
            "levels": allocation.sealed["levels"],
            "arm_id": allocation.sealed["arm_id"],
        }
        for allocation in session.scalars(in_order)
    ]
    note(session, "randomisation_scheme", trial_id, "reveal", {"allocations": len(allocations)})
    return {
        "trial_id": trial_id,
        "commitment": row.commitment,
        "committed": scheme_of(row).committed(),
        "allocations": allocations,
    }
