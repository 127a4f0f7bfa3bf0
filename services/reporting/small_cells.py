"""Small cells in the answers: which threshold a caller gets, and the report and site lists with it applied.

- Admins see true counts (threshold 0).
- Everyone else who reads counts below the trial level (a trial's sponsor; a coordinator listing its
  trial's sites) gets the deployment's `ACCRUAL_SMALL_CELL_THRESHOLD` (default 11, the CMS cell-size
  rule the research adopts for sponsors; 0 turns it off).
- Public answers hold no count below the trial level at all (the public summary is the trial's
  applied count and its sites' cities, no per-site figure); PUBLIC_THRESHOLD is what any such count
  would get, whatever the deployment says.

A withheld count is `null`, and the entry holding it names the field in its `suppressed` list: a client
that reads numbers gets no number it could mistake for a count, and one that ignores the new field
keeps working on every other figure. The trial-level totals (applied, enrolled) are always shown: the
trial list publishes them too. The cells of one report are tied together by their equations (statuses,
sites, weeks, withdrawal reasons, arms add up to a total; a site's applied minus its enrolled, and the
enrolled minus those withdrawn after enrolment, are derived figures), and services.reporting.suppression
hides what would give a small count away through them.

The running threshold is audited: the first answer a process gives under it checks the trail's last
`small_cell_threshold` entry and, when it differs (or there is none), writes one (entity `setting`).
So no answer is ever served under a threshold the trail does not hold; a deployment setting has no
request of its own to carry the entry, and this is the first moment the setting takes effect.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from models import AuditEntry, AuditPending, Role
from models.db import Database
from services.audit import acting_as, note
from services.reporting.suppression import Table, suppress
from services.schemas.api import CriteriaPreview, DecisionCounts, RecruitmentReport, SiteOut
from services.tokens import Caller

SETTING_ENTITY = "setting"
THRESHOLD_ID = "small_cell_threshold"
APPLIED, ENROLLED = "applied", "enrolled"
_recorded: dict[str, int] = {}
_lock = threading.Lock()


def threshold_for(caller: Caller, deployment_threshold: int) -> int:
    """The threshold a caller's answers get: none for an admin, the deployment's for everyone else."""
    return 0 if caller.role is Role.ADMIN else deployment_threshold


def answer_threshold(caller: Caller, deployment_threshold: int, db: Database) -> int:
    """The caller's threshold, the deployment's being in the audit trail before any answer applies it."""
    if caller.role is Role.ADMIN:
        return 0
    record_threshold(db, deployment_threshold)
    return deployment_threshold


# --- auditing the running threshold ------------------------------------------------------------------


def last_recorded_threshold(session: Session) -> int | None:
    """The threshold the audit trail last recorded (waiting entries are newer than chained ones)."""
    for model, order in ((AuditPending, AuditPending.id), (AuditEntry, AuditEntry.seq)):
        changes = session.scalars(
            select(model.changes)
            .where(model.entity == SETTING_ENTITY, model.entity_id == THRESHOLD_ID)
            .order_by(order.desc())
            .limit(1)
        ).first()
        if changes is not None:
            return int(changes["threshold"][1])
    return None


def record_threshold(db: Database, threshold: int) -> None:
    """Write the running threshold to the audit trail unless it is the one last recorded; once per
    process and database."""
    with _lock:
        if _recorded.get(db.url) == threshold:
            return
        with acting_as("deployment", "system"), db.transaction() as session:
            last = last_recorded_threshold(session)
            if last != threshold:
                note(session, SETTING_ENTITY, THRESHOLD_ID, "update", {"threshold": [last, threshold]})
        _recorded[db.url] = threshold


# --- the site tables ---------------------------------------------------------------------------------


def _site_cells(table: Table, sites: list[tuple[str, int, int]]) -> None:
    """Per site: applied (adding up to the trial's), enrolled (adding up to the trial's), and the
    derived applied-but-not-enrolled, never shown."""
    applied_parts, enrolled_parts = [], []
    for site_id, applied, enrolled in sites:
        site_applied = table.cell(f"site:{site_id}:applied", applied)
        site_enrolled = table.cell(f"site:{site_id}:enrolled", enrolled)
        rest = table.cell(f"site:{site_id}:rest", applied - enrolled, virtual=True)
        table.equation(site_applied, [site_enrolled, rest])
        applied_parts.append(site_applied)
        enrolled_parts.append(site_enrolled)
    table.cell(APPLIED, sum(a for _, a, _ in sites), exempt=True)
    table.cell(ENROLLED, sum(e for _, _, e in sites), exempt=True)
    table.equation(APPLIED, applied_parts)
    table.equation(ENROLLED, enrolled_parts)


def suppress_sites(sites: list[SiteOut], threshold: int) -> list[SiteOut]:
    """The site list with its small counts withheld."""
    table = Table()
    _site_cells(table, [(s.site_id, s.applied_count or 0, s.enrolled_count or 0) for s in sites])
    hidden = suppress(table, threshold)
    for site in sites:
        for field, key in (("applied_count", "applied"), ("enrolled_count", "enrolled")):
            _withhold(site, field, f"site:{site.site_id}:{key}" in hidden)
    return sites


def _withhold(entry: Any, field: str, hidden: bool, listed_as: str | None = None) -> None:
    if hidden:
        setattr(entry, field, None)
        entry.suppressed.append(listed_as or field)


# --- the recruitment report --------------------------------------------------------------------------


def _report_table(report: RecruitmentReport) -> Table:
    table = Table()
    _site_cells(table, [(s.site_id, s.applied_count or 0, s.enrolled_count or 0) for s in report.sites])
    # The sites' totals are the report's: the trial-level figures, shown whatever they are.
    table.cell(APPLIED, report.applied_count, exempt=True)
    enrolled = report.counts.get("enrolled") or 0
    table.cell(ENROLLED, enrolled, exempt=True)
    statuses = [
        table.cell(f"counts.{status}", n or 0) for status, n in report.counts.items() if status != "enrolled"
    ]
    table.equation(APPLIED, [*statuses, ENROLLED])
    reasons = [
        table.cell(f"reason:{r.reason}", r.count or 0)
        for r in report.consort.excluded.not_enrolled
        if not r.reason.startswith("awaiting_")
    ]
    if "counts.withdrawn" in table.values:
        table.equation("counts.withdrawn", reasons)
    after = table.cell("withdrawn_after_enrolment", report.withdrawn_after_enrolment or 0)
    still = table.cell("still_enrolled", enrolled - (report.withdrawn_after_enrolment or 0), virtual=True)
    table.equation(ENROLLED, [after, still])
    for week in report.weekly:
        table.cell(f"week:{week.week_start}:applied", week.applied or 0)
        table.cell(f"week:{week.week_start}:enrolled", week.enrolled or 0)
    table.equation(APPLIED, [f"week:{w.week_start}:applied" for w in report.weekly])
    table.equation(ENROLLED, [f"week:{w.week_start}:enrolled" for w in report.weekly])
    for failure in report.screen_failures:  # each at most the ineligible: no equation ties them
        table.cell(f"failure:{failure.criterion_id}", failure.count or 0)
    arms = report.consort.allocated
    blinded = len(arms) == 1 and arms[0].arm_id is None
    table.cell("allocated", sum(a.count or 0 for a in arms), exempt=True)
    table.equation("allocated", [table.cell(f"arm:{a.arm_id}", a.count or 0, exempt=blinded) for a in arms])
    return table


# Where a reason of the CONSORT's "not enrolled" box is a status's count under another name.
_AWAITING = {
    "awaiting_screening": "counts.submitted",
    "awaiting_review": "counts.needs_review",
    "awaiting_enrolment": "counts.eligible",
}


def suppress_report(report: RecruitmentReport, threshold: int) -> RecruitmentReport:
    """The report with every small count below the trial level withheld, each cell the same wherever
    it appears (a status in `counts` and in the CONSORT flow, a criterion in both failure lists)."""
    report.small_cell_threshold = threshold
    hidden = suppress(_report_table(report), threshold)
    if not hidden:
        return report
    for status in list(report.counts):
        if f"counts.{status}" in hidden:
            report.counts[status] = None
            report.suppressed.append(f"counts.{status}")
    _withhold(report, "withdrawn_after_enrolment", "withdrawn_after_enrolment" in hidden)
    for site in report.sites:
        _withhold(site, "applied_count", f"site:{site.site_id}:applied" in hidden)
        _withhold(site, "enrolled_count", f"site:{site.site_id}:enrolled" in hidden)
    for week in report.weekly:
        _withhold(week, "applied", f"week:{week.week_start}:applied" in hidden)
        _withhold(week, "enrolled", f"week:{week.week_start}:enrolled" in hidden)
    for entry in _entries(report):
        _withhold(entry[0], "count", entry[1] in hidden)
    consort = report.consort
    _withhold(consort.excluded, "ineligible", "counts.ineligible" in hidden)
    _withhold(consort, "withdrawn_after_enrolment", "withdrawn_after_enrolment" in hidden)
    return report


def _entries(report: RecruitmentReport) -> Iterator[tuple[Any, str]]:
    """Every entry with a `count` field, and the cell it shows."""
    for failure in report.screen_failures:
        yield failure, f"failure:{failure.criterion_id}"
    for excluded in report.consort.excluded.reasons:
        yield excluded, f"failure:{excluded.criterion_id}"
    for waiting in report.consort.excluded.not_enrolled:
        yield waiting, _AWAITING.get(waiting.reason, f"reason:{waiting.reason}")
    for arm in report.consort.allocated:
        yield arm, f"arm:{arm.arm_id}"


# --- an amendment's preview --------------------------------------------------------------------------

DECISIONS = ("eligible", "ineligible", "needs_review")
CONSIDERED = "considered"


def _phases(preview: CriteriaPreview) -> list[str]:
    """`after` always; `before` only when the trial has criteria now (else it is all zeros)."""
    return ["after"] if preview.current_version is None else ["before", "after"]


def _preview_table(preview: CriteriaPreview) -> Table:
    """The decision counts before and after add up to the applications considered (the trial-level
    total, shown), per decision over the sites; a site's applications are the same before and after, a
    total never shown. A criterion's exclusions are at most the ineligible: no equation ties them."""
    table = Table()
    table.cell(CONSIDERED, preview.applications_considered, exempt=True)
    for phase in _phases(preview):
        counts: DecisionCounts = getattr(preview, phase)
        totals = [table.cell(f"{phase}.{d}", getattr(counts, d) or 0) for d in DECISIONS]
        table.equation(CONSIDERED, totals)
        for d in DECISIONS:
            table.equation(f"{phase}.{d}", [f"site:{s.site_id}:{phase}.{d}" for s in preview.by_site])
    for site in preview.by_site:
        size = sum(getattr(site.after, d) or 0 for d in DECISIONS)
        table.cell(f"site:{site.site_id}", size, virtual=True)
        for phase in _phases(preview):
            counts = getattr(site, phase)
            cells = [
                table.cell(f"site:{site.site_id}:{phase}.{d}", getattr(counts, d) or 0) for d in DECISIONS
            ]
            table.equation(f"site:{site.site_id}", cells)
    for criterion in preview.by_criterion:
        table.cell(f"criterion:{criterion.criterion_id}:before", criterion.excluded_before or 0)
        table.cell(f"criterion:{criterion.criterion_id}:after", criterion.excluded_after or 0)
    return table


def _withhold_decisions(counts: DecisionCounts, prefix: str, hidden: frozenset[str]) -> None:
    for decision in DECISIONS:
        _withhold(counts, decision, f"{prefix}{decision}" in hidden)


def suppress_preview(preview: CriteriaPreview, threshold: int) -> CriteriaPreview:
    """The preview with its small counts withheld, and, under any threshold, without the ids of the
    applications that would change: a list of ids is row-level data, and its length a count."""
    preview.small_cell_threshold = threshold
    if threshold <= 1:
        return preview
    if preview.changed:
        preview.changed = []
    preview.suppressed.append("changed")
    hidden = suppress(_preview_table(preview), threshold)
    for phase in _phases(preview):
        _withhold_decisions(getattr(preview, phase), f"{phase}.", hidden)
        for site in preview.by_site:
            _withhold_decisions(getattr(site, phase), f"site:{site.site_id}:{phase}.", hidden)
    for criterion in preview.by_criterion:
        _withhold(criterion, "excluded_before", f"criterion:{criterion.criterion_id}:before" in hidden)
        _withhold(criterion, "excluded_after", f"criterion:{criterion.criterion_id}:after" in hidden)
    return preview
