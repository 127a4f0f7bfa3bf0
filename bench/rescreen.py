"""Re-screening after a protocol amendment: applications per second, on SQLite and on PostgreSQL.

    python bench/rescreen.py [--backend sqlite|postgres|both] [--count 10000] [--batch 500]

Builds a trial (NCT06359912) with `--count` decided, open applications, adds a criteria version (I4
tightened to Wagner <= 3) and times `rescreen_trial` (services.applications.rescreening) until every
application is screened under it: evaluation, one new screening round and 25 criterion results per
application, the changed decisions with their history and events, one transaction per batch. Printed
beside it, from the same run: the rate of the engine alone over the same observations (compiled once),
and the rate when the criteria are compiled for every application, which is what compiling once per
version saves.
PostgreSQL: a new database on postgresql+psycopg://postgres@127.0.0.1:5432, dropped afterwards.
"""

from __future__ import annotations

import argparse
import copy
import secrets
import sys
import tempfile
import time
from datetime import date
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run as a script from anywhere

from sqlalchemy import create_engine, func, insert, select, text

from models import Application, ApplicationHistory, Event, Screening, Site
from models.application import observations_binding
from models.audit import AuditKeys
from models.base import utcnow
from models.db import Database
from models.migrate import upgrade
from models.sealing import Keyring, Sealed, keyring_of
from services.applications.rescreening import amend_criteria, rescreen_trial
from services.ids import new_id
from services.trials.criteria import bundled_document, compile_document
from services.trials.queries import find_trial
from services.trials.seed import seed
from tests.support.applicants import eligible_applicant

PG_ADMIN = "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"
TRIAL = "NCT06359912"


def observations(n: int) -> dict[str, Any]:
    applicant = eligible_applicant(f"B-{n}", wagner_grade=n % 5, hemoglobin_g_l=121.0)
    del applicant["screening_id"]
    if n % 7 == 0:
        del applicant["hiv_positive"]  # some go to review
    return applicant


def populate(db: Database, count: int) -> list[dict[str, Any]]:
    """`count` applications decided under version 1, inserted in bulk."""
    with db.transaction() as session:
        seed(session)
        site_id = session.scalars(select(Site.site_id).where(Site.trial_id == TRIAL)).one()
    compiled = compile_document(bundled_document("NCT06359912.criteria.yaml"))
    today, now = date.today(), utcnow()
    keyring = keyring_of(db.engine.dialect)
    rows, profiles = [], []
    for n in range(count):
        profile = observations(n)
        decision = compiled.evaluate(profile, today).decision
        profiles.append(profile)
        application_id = new_id("app")
        # Core bypasses the ORM's sealing hook: seal each value bound to its own row, as the ORM would.
        sealed = Sealed(profile, keyring.seal(profile, observations_binding(application_id)))
        rows.append(
            {
                "id": application_id, "trial_id": TRIAL, "site_id": site_id, "screening_id": f"B-{n}",
                "status": decision, "decision": decision, "observations": sealed, "criteria_version": 1,
                "screening_round": 1, "screening_deliveries": 1, "submitted_at": now, "decided_at": now,
                "version": 2,
            }
        )  # fmt: skip
    with db.transaction() as session:
        for start in range(0, count, 2000):
            session.execute(insert(Application), rows[start : start + 2000])
    return profiles


def amend(db: Database) -> str:
    document = copy.deepcopy(bundled_document("NCT06359912.criteria.yaml"))
    next(c for c in document["criteria"] if c["id"] == "I4")["rule"] = {"var": "wagner_grade", "le": 3}
    with db.transaction() as session:
        amend_criteria(session, find_trial(session, TRIAL), document, "bench")
        event_id = session.scalars(select(Event.id).where(Event.type == "trial.criteria_changed")).one()
    return event_id


def engine_rates(profiles: list[dict[str, Any]]) -> tuple[float, float]:
    document = bundled_document("NCT06359912.criteria.yaml")
    compiled = compile_document(document)
    today = date.today()
    started = time.perf_counter()
    for profile in profiles:
        compiled.evaluate(profile, today)
    once = len(profiles) / (time.perf_counter() - started)
    sample = profiles[: max(1, len(profiles) // 10)]
    started = time.perf_counter()
    for profile in sample:
        compile_document(document).evaluate(profile, today)
    each = len(sample) / (time.perf_counter() - started)
    return once, each


def run(name: str, url: str, count: int, batch: int) -> dict[str, float]:
    # Observations are sealed at rest and the audit trail is chained: both need keys.
    db = Database(url, Keyring.parse(Keyring.new_entry("k1")), AuditKeys.parse(AuditKeys.new_entry("a1")))
    try:
        upgrade(db)
        profiles = populate(db, count)
        event_id = amend(db)
        started = time.perf_counter()
        tally = rescreen_trial(db, TRIAL, 2, event_id, batch_size=batch)
        elapsed = time.perf_counter() - started
        with db.sessions() as session:
            below = session.scalar(
                select(func.count()).select_from(Application).where(Application.criteria_version < 2)
            )
            screenings = session.scalar(select(func.count()).select_from(Screening))
            history = session.scalar(select(func.count()).select_from(ApplicationHistory))
        assert tally.finished and tally.screened == count and below == 0 and screenings == count
        once, each = engine_rates(profiles)
        rate = count / elapsed
        print(
            f"{name:>9}: {count} applications re-screened in {elapsed:.2f} s = {rate:,.0f} applications/s "
            f"({tally.changed} decisions changed, {history} history rows)\n"
            f"{'':>9}  reference, same run: engine alone {once:,.0f}/s; "
            f"compiling per application {each:,.0f}/s"
        )
        return {"rate": count / elapsed, "engine": once, "compile_each": each}
    finally:
        db.dispose()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backend", choices=["sqlite", "postgres", "both"], default="both")
    parser.add_argument("--count", type=int, default=10_000)
    parser.add_argument("--batch", type=int, default=500)
    args = parser.parse_args()
    if args.backend in ("sqlite", "both"):
        with tempfile.TemporaryDirectory(prefix="accrual-bench-") as workdir:
            run("sqlite", f"sqlite:///{workdir}/bench.db", args.count, args.batch)
    if args.backend in ("postgres", "both"):
        name = f"accrual_bench_{secrets.token_hex(4)}"
        admin = create_engine(PG_ADMIN, isolation_level="AUTOCOMMIT")
        with admin.connect() as connection:
            connection.execute(text(f'CREATE DATABASE "{name}"'))
        try:
            run("postgres", PG_ADMIN.rsplit("/", 1)[0] + f"/{name}", args.count, args.batch)
        finally:
            with admin.connect() as connection:
                connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
            admin.dispose()
    return 0


if __name__ == "__main__":
    sys.exit(main())
