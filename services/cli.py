"""The `accrual` command and its subcommands (`accrual --help` lists them all; the README describes each).

It is the composition root of the command line: the only place in services/ that reaches into workers/,
and only inside the commands that run them.
"""

from __future__ import annotations

import contextlib
import functools
import json
import logging
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, NoReturn, ParamSpec, TypeVar

import click
import yaml
from pydantic import ValidationError
from sqlalchemy import select
from sqlalchemy.orm import Session

from config import Settings, get_settings
from config.queues import ALL as ALL_QUEUES
from config.queues import NOTIFICATIONS
from config.settings import redact_url
from models import ApiToken, Role, Site, Trial, TrialStatus
from models.audit import AUDIT_KEYS, AuditTampered, audit_keys_of
from models.base import utcnow
from models.db import Database
from models.key_lists import new_key_entry
from models.migrate import current_revision, is_current, upgrade
from models.sealing import DATA_KEYS, SealingError
from services.applications.dead_letters import DeadLetterError, list_dead_letters, retry_screening
from services.audit import (
    Checkpoint,
    CheckpointError,
    acting_as,
    chain_pending_entries,
    read_checkpoint,
    sign_checkpoint,
    verify_trail,
)
from services.audit_export import FORMATS, Exported, export_audit
from services.data_keys import (
    reseal_observations,
    reseal_previous_values,
    reseal_randomisation,
    reseal_screening_results,
    reseal_webhook_secrets,
)
from services.errors import DomainError, NotFound
from services.health import check_broker, check_database
from services.log_lines import LOG_FORMAT
from services.provenance import declare_service
from services.randomisation.verification import reveal, verify_allocations
from services.reporting.counts import count_uncounted
from services.tokens import TokenError, create_token, list_tokens, resolve_sponsor, revoke_token
from services.trials.criteria import CriteriaError, amend_criteria
from services.trials.queries import find_trial, registry_id
from services.trials.registry_import import import_record
from services.trials.seed import seed


def _fail(message: str) -> NoReturn:
    click.echo(f"accrual: {message}", err=True)
    sys.exit(2)


def _database(settings: Settings) -> Database:
    """The configured database, or one clear line naming the variable and address and exit 2."""
    db = Database.for_settings(settings)
    if (problem := check_database(db)) is not None:
        _fail(f"cannot reach ACCRUAL_DATABASE_URL={redact_url(settings.database_url)}: {problem}")
    return db


def _broker_problem(settings: Settings) -> str | None:
    if (problem := check_broker(settings.broker_url)) is not None:
        return f"cannot reach ACCRUAL_BROKER_URL={redact_url(settings.broker_url)}: {problem}"
    return None


def _require_broker(settings: Settings) -> None:
    if (problem := _broker_problem(settings)) is not None:
        _fail(problem)


def _logging(settings: Settings) -> None:
    # Every line names the process and the request it serves or follows (services.provenance).
    logging.basicConfig(level=settings.log_level, format=LOG_FORMAT)


P = ParamSpec("P")
R = TypeVar("R")


def _operator(command: Callable[P, R]) -> Callable[P, R]:
    """An operator's act at the command line: the audit trail names `cli` as its author."""

    @functools.wraps(command)
    def acting(*args: P.args, **kwargs: P.kwargs) -> R:
        with acting_as("cli", "operator"):
            return command(*args, **kwargs)

    return acting


@click.group()
def main() -> None:
    """Accrual: recruitment into clinical trials."""


@main.group()
def db() -> None:
    """Database schema."""


@db.command("upgrade")
def db_upgrade() -> None:
    """Create or migrate the schema to the newest revision, and say what was done."""
    database = _database(get_settings())
    before = current_revision(database)
    upgrade(database)
    after = current_revision(database)
    if before == after:
        click.echo(f"database schema is current (revision {after}): nothing to do")
    elif before is None:
        click.echo(f"database schema created at revision {after}")
    else:
        click.echo(f"database schema upgraded from revision {before} to {after}")


@db.command("recount")
@_operator
def db_recount() -> None:
    """Count every application the recruitment counters do not hold yet (after an upgrade from a
    version without counters, or to repair them); the scheduler also does this every few minutes."""
    database = _database(get_settings())
    total = 0
    while batch := count_uncounted(database, limit=1000):
        total += batch
    click.echo(f"applications counted: {total}")


@main.command("seed")
@_operator
def seed_command() -> None:
    """Load the bundled seed trials with their criteria and sites (idempotent)."""
    database = _database(get_settings())
    with database.transaction() as session:
        loaded = seed(session)
    click.echo(f"seed trials loaded: {', '.join(loaded)}")


@main.group()
def trials() -> None:
    """Trials from ClinicalTrials.gov records, and their criteria."""


@trials.command("import")
@click.argument(
    "files", nargs=-1, required=True, type=click.Path(exists=True, dir_okay=False, path_type=Path)
)
@_operator
def trials_import(files: tuple[Path, ...]) -> None:
    """Create or replace trials from ClinicalTrials.gov API v2 study records (JSON); all or nothing."""
    database = _database(get_settings())
    imported = []
    with database.transaction() as session:
        for path in files:
            text = path.read_text(encoding="utf-8")
            if (trial_id := _criteria_file_of(text)) is not None:
                session.rollback()
                _fail(
                    f"{path} is a criteria file, not a registry record: attach it with "
                    f"`accrual trials criteria {trial_id} {path}`; nothing was imported"
                )
            try:
                record = json.loads(text)
                trial, created = import_record(session, record)
            except (ValueError, DomainError) as exc:
                session.rollback()
                _fail(f"{path}: {exc}; nothing was imported")
            imported.append(f"{trial.trial_id} ({'created' if created else 'replaced'})")
    click.echo("imported: " + ", ".join(imported))


def _criteria_file_of(text: str) -> str | None:
    """The trial id of a criteria document (YAML or JSON: `trial_id` and a `criteria` list), else None."""
    try:
        document = yaml.safe_load(text)
    except yaml.YAMLError:
        return None
    if (
        isinstance(document, dict)
        and isinstance(document.get("criteria"), list)
        and "protocolSection" not in document
    ):
        return str(document.get("trial_id") or "TRIAL_ID")
    return None


@trials.command("criteria")
@click.argument("trial_id")
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@_operator
def trials_criteria(trial_id: str, file: Path) -> None:
    """Attach a criteria file (YAML or JSON) as the trial's new criteria version."""
    database = _database(get_settings())
    document = yaml.safe_load(file.read_text(encoding="utf-8"))
    try:
        with database.transaction() as session:
            trial = find_trial(session, trial_id)
            if not isinstance(document, dict) or str(document.get("trial_id", "")).upper() != trial.trial_id:
                raise CriteriaError(f"{file} is not a criteria document for {trial.trial_id}")
            amendment = amend_criteria(session, trial, document, "cli")
    except (CriteriaError, DomainError) as exc:
        _fail(str(exc))
    state = "new version" if amendment.created else "unchanged, version"
    click.echo(f"{trial_id.upper()} criteria: {state} {amendment.version}")


@main.group()
def screening() -> None:
    """Dead-lettered screenings: list them and send them back to screening."""


@screening.command("dead-letters")
def screening_dead_letters() -> None:
    """Applications whose screening was given up after repeated deliveries (tab-separated; ids only)."""
    database = _database(get_settings())
    with database.reading() as session:
        rows = list_dead_letters(session)
    click.echo("application\ttrial\tsite\tdeliveries\tdead_lettered_at")
    for row in rows:
        click.echo(
            f"{row.application_id}\t{row.trial_id}\t{row.site_id}\t{row.deliveries}\t"
            f"{row.dead_lettered_at:%Y-%m-%d %H:%M:%S}"
        )


@screening.command("retry")
@click.argument("application_ids", nargs=-1, required=True)
@_operator
def screening_retry(application_ids: tuple[str, ...]) -> None:
    """Screen dead-lettered applications again (all or none), once their cause is fixed."""
    database = _database(get_settings())
    try:
        with database.transaction() as session:
            retried = retry_screening(session, list(dict.fromkeys(application_ids)), "cli")
    except DeadLetterError as exc:
        _fail(f"{exc}; nothing was retried")
    click.echo(f"queued for screening again: {', '.join(retried)}")


@main.group()
def allocation() -> None:
    """Randomisation: check the allocations against the scheme's commitment."""


@allocation.command("verify")
@click.argument("trial_id")
def allocation_verify(trial_id: str) -> None:
    """Prove that every allocation of TRIAL_ID followed its scheme: the scheme still hashes to its
    commitment, and replaying the list (or minimisation's draws) gives each participant, in order, the
    same sequence number, stratum place and arm. Exit 1 naming the first that does not."""
    result = _on_trial(verify_allocations, trial_id, writes=False)
    click.echo(f"trial {result.trial_id}: commitment {result.commitment}")
    if result.problem is not None:
        click.echo(f"accrual: allocation does not follow the scheme: {result.problem}", err=True)
        sys.exit(1)
    click.echo(f"{result.allocations} allocation(s) follow the scheme, in order, none skipped")


@allocation.command("reveal")
@click.argument("trial_id")
@click.option(
    "--allocation-complete",
    is_flag=True,
    help="Confirm that nobody else will be allocated: the seed predicts every later arm.",
)
@_operator
def allocation_reveal(trial_id: str, allocation_complete: bool) -> None:
    """Print, as JSON, what TRIAL_ID's commitment fixes (the seed, any uploaded list) and every
    allocation with its stratum, place, levels and arm, for an outsider to check without this service.
    Audited. Only once allocation is complete: the seed predicts every later arm."""
    if not allocation_complete:
        _fail("add --allocation-complete: the seed predicts every later arm")
    document = _on_trial(reveal, trial_id, writes=True)
    click.echo(json.dumps(document, indent=2))


def _on_trial(use: Callable[[Session, str], R], trial_id: str, writes: bool) -> R:
    """`use` on the trial TRIAL_ID names (case-insensitively), in a transaction when it `writes`;
    exit 2 when the trial has no scheme."""
    database = _database(get_settings())
    try:
        with database.transaction() if writes else database.reading() as session:
            return use(session, registry_id(trial_id))
    except NotFound as exc:
        _fail(exc.detail)


@main.group()
def keys() -> None:
    """Keys sealing observations and webhook secrets at rest (ACCRUAL_DATA_KEYS), and audit keys."""


@keys.command("new")
@click.argument("key_id")
def keys_new(key_id: str) -> None:
    """Print a new key entry `KEY_ID:base64`, for ACCRUAL_DATA_KEYS (or ACCRUAL_AUDIT_KEYS): put it first,
    keep the old ones after it, restart the processes, then run `accrual keys rotate`."""
    if not (DATA_KEYS.accepts_id(key_id) and AUDIT_KEYS.accepts_id(key_id)):
        # Either list may receive it, so an id both accept (audit entries keep it in 16 characters).
        _fail(f"a key id is letters and digits only, at most {AUDIT_KEYS.max_id_length} of them")
    click.echo(new_key_entry(key_id))


@keys.command("rotate")
@_operator
def keys_rotate() -> None:
    """Re-seal every application's observations and the values its corrections replaced, every
    screening's results, every webhook secret and every allocation and randomisation scheme under the
    current (first) data key, bound to its row; then the older keys may be removed from
    ACCRUAL_DATA_KEYS."""
    settings = get_settings()
    database = _database(settings)
    try:
        applications = reseal_observations(database)
        click.echo(f"applications re-sealed under the current key: {applications}")
        previous = reseal_previous_values(database)
        click.echo(f"values replaced by corrections re-sealed under the current key: {previous}")
        screenings = reseal_screening_results(database)
        click.echo(f"screening results re-sealed under the current key: {screenings}")
        webhook_secrets = reseal_webhook_secrets(database, settings.signing_key())
        click.echo(f"webhook secrets re-sealed under the current key: {webhook_secrets}")
        randomisation = reseal_randomisation(database)
        click.echo(f"allocations and randomisation schemes re-sealed under the current key: {randomisation}")
    except SealingError as exc:  # altered or moved in the database: the operator must look at it
        _fail(f"stopped: {exc}")


@main.group()
def audit() -> None:
    """The audit trail."""


@audit.command("verify")
@click.option(
    "--checkpoint",
    "checkpoint_source",
    metavar="FILE_OR_TEXT",
    help="A checkpoint from `accrual audit checkpoint`, or a file holding one: the trail must extend it.",
)
def audit_verify(checkpoint_source: str | None) -> None:
    """Recompute the audit trail's HMAC chain; exit 1, naming the first broken entry, if it is not intact
    (or, with --checkpoint, no longer holds the checkpointed entry)."""
    database = _database(get_settings())
    try:
        checkpoint = None if checkpoint_source is None else _checkpoint(database, checkpoint_source)
        verdict = verify_trail(database, checkpoint)
    finally:
        database.dispose()
    if not verdict.intact:
        click.echo(
            f"accrual: audit trail broken after {verdict.entries} good entries: {verdict.problem}", err=True
        )
        sys.exit(1)
    keys = ", ".join(f"{key_id}: {count}" for key_id, count in sorted(verdict.by_key.items()))
    extends = f"; it extends the checkpoint of entry {checkpoint.seq}" if checkpoint is not None else ""
    click.echo(f"audit trail intact: {verdict.entries} entries (by audit key: {keys or 'none'}){extends}")


def _checkpoint(database: Database, source: str) -> Checkpoint:
    """The checkpoint given as text or in a file; exit 2 with the reason if it is not a valid one."""
    path = Path(source)
    try:
        text = path.read_text() if path.is_file() else source
        return read_checkpoint(text, audit_keys_of(database.engine.dialect))
    except (OSError, UnicodeDecodeError, CheckpointError) as exc:
        _fail(f"--checkpoint: {exc}")
        raise  # unreachable: _fail exits


@audit.command("checkpoint")
def audit_checkpoint() -> None:
    """Verify the trail, then print its newest entry signed with the current audit key, alone on its line.
    Store it away from the database; `accrual audit verify --checkpoint` later proves the trail extends it."""
    database = _database(get_settings())
    try:
        chain_pending_entries(database)
        with database.reading() as session:
            made = sign_checkpoint(session)
    except (CheckpointError, AuditTampered) as exc:
        click.echo(f"accrual: {exc}", err=True)
        sys.exit(1)
    finally:
        database.dispose()
    click.echo(made.text())


def _utc_time(_context: click.Context, parameter: click.Parameter, value: str) -> datetime:
    """An ISO 8601 date or time; UTC when it names no offset."""
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        raise click.BadParameter(f"{value!r} is not an ISO 8601 date or time", param=parameter) from None
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


def _export_to_file(
    database: Database, since: datetime, until: datetime, form: str, output: Path
) -> Exported:
    """Written beside `output` first, then moved over it: a failed export leaves no half file."""
    partial = output.with_name(f".{output.name}.partial")
    try:
        with partial.open("w", encoding="utf-8", newline="") as out:
            exported = export_audit(database, since, until, form, out, str(output))
        partial.replace(output)
    finally:
        partial.unlink(missing_ok=True)
    return exported


@audit.command("export")
@click.option(
    "--since", required=True, callback=_utc_time, help="ISO 8601 start, included (UTC if no offset)."
)
@click.option("--until", required=True, callback=_utc_time, help="ISO 8601 end, excluded (UTC if no offset).")
@click.option("--format", "form", type=click.Choice(FORMATS), required=True, help="jsonl or csv.")
@click.option(
    "--output",
    type=click.Path(dir_okay=False, writable=True, path_type=Path),
    help="Write to this file (replaced whole once written) instead of standard output.",
)
@_operator
def audit_export(since: datetime, until: datetime, form: str, output: Path | None) -> None:
    """Every audit entry of [--since, --until), chained first, as CSV (with headers) or JSON lines (with
    seq, hash, prev_hash and key_id, so the chain can be checked again); the export itself is audited."""
    if since >= until:
        raise click.BadParameter("must be later than --since", param_hint="--until")
    database = _database(get_settings())
    try:
        if output is None:
            exported = export_audit(database, since, until, form, sys.stdout, "stdout")
        else:
            exported = _export_to_file(database, since, until, form, output)
    except AuditTampered as exc:
        _fail(str(exc))
    finally:
        database.dispose()
    span = f" (seq {exported.first_seq} to {exported.last_seq})" if exported.entries else ""
    click.echo(f"exported {exported.entries} audit entries{span}", err=True)


@main.group()
def token() -> None:
    """API tokens."""


@token.command("create")
@click.option("--role", type=click.Choice([r.value for r in Role]), required=True)
@click.option("--site", "sites", multiple=True, help="Site id a coordinator works for (repeatable).")
@click.option(
    "--sponsor",
    help="The sponsor a sponsor token reads for: its id (a slug of the name, e.g. beijing-northland-biotech) "
    "or its exact name as the trials' registry records give it.",
)
@click.option("--name", help="A label for the token's holder.")
@click.option(
    "--email",
    help="Where the token's notices go: a coordinator's (decisions, recruitment stopping); "
    "the owner's of its webhooks (a delivery failed for good).",
)
@click.option(
    "--expires-in-days",
    type=click.FloatRange(min=0, min_open=True),
    help="The token stops working after this.",
)
@click.option(
    "--unblinded",
    is_flag=True,
    help="The token sees each participant's allocated arm (admins always do); others see the sequence.",
)
@_operator
def token_create(
    role: str,
    sites: tuple[str, ...],
    sponsor: str | None,
    name: str | None,
    email: str | None,
    expires_in_days: float | None,
    unblinded: bool,
) -> None:
    """Print a new bearer token, alone on its line. It is stored hashed and cannot be shown again."""
    database = _database(get_settings())
    expires_at = None if expires_in_days is None else utcnow() + timedelta(days=expires_in_days)
    try:
        with database.transaction() as session:
            if sponsor is not None:  # the slug or the exact name; the token keeps the exact name
                sponsor = resolve_sponsor(session, sponsor)
            value = create_token(session, Role(role), sites, sponsor, name, email, expires_at, unblinded)
    except TokenError as exc:
        _fail(str(exc))
    click.echo(value)


@token.command("list")
def token_list() -> None:
    """Every token's id, role, scope and state, one per line (tab-separated); never a token itself."""
    database = _database(get_settings())
    now = utcnow()
    with database.reading() as session:
        rows = list_tokens(session)
        click.echo("id\trole\tscope\tname\tcreated\texpires\tstate")
        for row in rows:
            click.echo("\t".join(_token_line(row, now)))


def _token_line(row: ApiToken, now: datetime) -> list[str]:
    expired = row.expires_at is not None and row.expires_at <= now
    state = "revoked" if row.revoked_at else "expired" if expired else "active"
    expires = f"{row.expires_at:%Y-%m-%d %H:%M}" if row.expires_at else "never"
    scope = (row.sponsor or ",".join(row.site_ids) or "-") + (" (unblinded)" if row.unblinded else "")
    return [row.id, row.role, scope, row.name or "-", f"{row.created_at:%Y-%m-%d %H:%M}", expires, state]


@token.command("revoke")
@click.argument("token_id")
@_operator
def token_revoke(token_id: str) -> None:
    """Revoke a token by its id (see `accrual token list`); its next request is refused."""
    database = _database(get_settings())
    try:
        with database.transaction() as session:
            revoke_token(session, token_id)
    except TokenError as exc:
        _fail(str(exc))
    click.echo(f"revoked {token_id}")


@main.command()
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=8000, show_default=True, type=int)
def api(host: str, port: int) -> None:
    """The HTTP API under gunicorn (a production WSGI server)."""
    from gunicorn.app.base import BaseApplication

    from services.app import create_app

    settings = get_settings()
    settings = settings.model_copy(update={"public_url": _public_url(settings, host, port)})
    _logging(settings)
    _database(settings)

    class _Server(BaseApplication):  # type: ignore[misc]
        def load_config(self) -> None:
            self.cfg.set("bind", f"{host}:{port}")
            self.cfg.set("workers", settings.api_workers)
            self.cfg.set("threads", settings.api_threads)
            # gthread, timing each request's wait for a thread so that overload is shed with 503s.
            self.cfg.set("worker_class", "services.api.load_shedding.QueueTimingWorker")
            self.cfg.set("accesslog", "-")
            # The access log shows paths and statuses only: no query strings, which may carry filters.
            self.cfg.set("access_log_format", '%(h)s "%(m)s %(U)s" %(s)s %(B)s %(L)ss')
            self.cfg.set("graceful_timeout", 20)

        def load(self) -> Any:
            return create_app(settings)

    _Server().run()


@main.command()
@click.option("--concurrency", type=int, help="Worker processes (default ACCRUAL_WORKER_CONCURRENCY).")
@click.option(
    "--queues",
    default=",".join(ALL_QUEUES),
    show_default=True,
    help="Queues to consume; a worker of its own for notifications keeps slow endpoints off screening.",
)
@click.option(
    "--wait-for-broker",
    is_flag=True,
    help="Start even when the broker cannot be reached, and keep retrying until it answers.",
)
def worker(concurrency: int | None, queues: str, wait_for_broker: bool) -> None:
    """A Celery worker consuming the screening and notification queues. An unreachable broker at
    start-up is one line and exit status 2 (a supervisor restarts it), unless --wait-for-broker; so are
    invalid settings and whatever the start-up self-check (workers/self_check.py) refuses."""
    settings = _valid_settings()
    _database(settings)
    if (problem := _broker_problem(settings)) is not None:
        if not wait_for_broker:
            _fail(problem)
        # Said once; Celery then retries until the broker answers (a running worker always does).
        click.echo(f"accrual: {problem}; the worker keeps retrying (--wait-for-broker)", err=True)
    from workers.celery_app import celery

    _self_check(celery)
    consumed = {queue.strip() for queue in queues.split(",")}
    declare_service("notifier" if consumed == {NOTIFICATIONS} else "worker")
    celery.worker_main(
        [
            "worker",
            "--queues", queues,
            "--concurrency", str(concurrency or settings.worker_concurrency),
            "--pool", "prefork",
            "--loglevel", settings.log_level,
            "--without-gossip", "--without-mingle",
        ]
    )  # fmt: skip


def _valid_settings() -> Settings:
    """The settings, or each of their errors on one line and exit 2 (not pydantic's traceback)."""
    try:
        return get_settings()
    except ValidationError as invalid:
        _fail("; ".join(str(error["msg"]).removeprefix("Value error, ") for error in invalid.errors()))


def _self_check(app: Any) -> None:
    """Refuse to start a worker whose delivery guarantees are off; print what only deserves a warning."""
    from workers import self_check

    findings = self_check.check(app)
    for warning in findings.warnings:
        click.echo(f"accrual: warning: {warning}", err=True)
    if findings.refusals:
        _fail("unsafe worker configuration, refusing to start: " + "; ".join(findings.refusals))


@main.command()
def beat() -> None:
    """The event relay and the periodic jobs (sweep, purges)."""
    settings = get_settings()
    declare_service("beat")
    _logging(settings)
    database = _database(settings)
    from workers import beat as scheduler
    from workers.celery_app import celery

    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    scheduler.run(settings, database, celery, stop)


@_operator
def _first_start(database: Database) -> list[str]:
    """Migrate and, on an empty database, seed and mint an admin and a coordinator token."""
    if not is_current(database):
        upgrade(database)
    with database.transaction() as session:
        if session.scalar(select(Trial.trial_id).limit(1)) is not None:
            return []
        seed(session)
        first_site = session.scalars(
            select(Site)
            .join(Trial, Trial.trial_id == Site.trial_id)
            .where(Site.status == TrialStatus.RECRUITING, Trial.overall_status == TrialStatus.RECRUITING)
            .order_by(Site.trial_id, Site.name)
            .limit(1)
        ).first()
        admin = create_token(session, Role.ADMIN, name="first admin")
        coordinator = create_token(
            session, Role.COORDINATOR, [first_site.site_id] if first_site else [], name="first coordinator"
        )
    return [
        f"admin token:       {admin}",
        f"coordinator token: {coordinator} (site {first_site.site_id if first_site else '-'})",
        "These tokens are shown once. Make more with `accrual token create`.",
    ]


@main.command()
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=8000, show_default=True, type=int)
def serve(host: str, port: int) -> None:
    """Everything in one command: API, worker, relay and scheduler, on the configured (embedded) services."""
    settings = get_settings()
    database = _database(settings)
    _require_broker(settings)
    for line in _first_start(database):
        click.echo(line)
    database.dispose()
    environment = {**os.environ, "ACCRUAL_PUBLIC_URL": _public_url(settings, host, port)}
    children = {
        name: subprocess.Popen([sys.executable, "-m", "services.cli", name, *args], env=environment)
        for name, args in (("worker", []), ("beat", []), ("api", ["--host", host, "--port", str(port)]))
    }
    if not _accepting(host, port, children["api"]):
        click.echo("accrual: the API did not start (its output is above); stopping the others", err=True)
        _stop_all(children)
        sys.exit(1)
    # Only now, with the socket bound and answering: scripts wait for this line.
    click.echo(f"Accrual listening on http://{host}:{port} (API docs at /docs); Ctrl-C stops it")
    if not settings.mail_enabled:
        click.echo("E-mail is off: set ACCRUAL_SMTP_HOST (and ACCRUAL_SMTP_*) to notify coordinators.")
    sys.exit(_supervise(children))


def _public_url(settings: Settings, host: str, port: int) -> str:
    """ACCRUAL_PUBLIC_URL as set; unset, the address the API is bound to (loopback for a wildcard), so
    that e-mail links point where the service answers."""
    if "public_url" in settings.model_fields_set:
        return settings.public_url
    reachable = "127.0.0.1" if host in ("0.0.0.0", "::", "") else host  # noqa: S104 - compared, not bound
    return f"http://{f'[{reachable}]' if ':' in reachable else reachable}:{port}"


def _accepting(host: str, port: int, api: subprocess.Popen[bytes], timeout: float = 120) -> bool:
    """Wait until the API's socket accepts connections; False if its process exits first."""
    target = "127.0.0.1" if host in ("0.0.0.0", "") else "::1" if host == "::" else host  # noqa: S104
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and api.poll() is None:
        with contextlib.suppress(OSError), socket.create_connection((target, port), timeout=1):
            return True
        time.sleep(0.1)
    return False


def _supervise(children: dict[str, subprocess.Popen[bytes]]) -> int:
    """Wait until a signal or a child's exit, then stop every child; the exit code says which."""
    stopping = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stopping.set())
    signal.signal(signal.SIGINT, lambda *_: stopping.set())
    code = 0
    while not stopping.is_set():
        exited = [name for name, child in children.items() if child.poll() is not None]
        if exited:
            code = children[exited[0]].returncode or 1
            click.echo(f"accrual: the {exited[0]} component exited; stopping the others", err=True)
            break
        stopping.wait(0.5)
    _stop_all(children)
    return code


def _stop_all(children: dict[str, subprocess.Popen[bytes]]) -> None:
    """SIGTERM to every child still running, then SIGKILL to any not gone within 20 seconds."""
    for child in children.values():
        if child.poll() is None:
            child.terminate()
    deadline = time.monotonic() + 20
    for child in children.values():
        try:
            child.wait(max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            child.kill()


if __name__ == "__main__":
    main()
