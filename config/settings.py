"""One typed settings object, read from ACCRUAL_* environment variables and `.env`.

Every value has an embedded default so that `accrual serve` runs with nothing installed but Python:
a SQLite file for state and kombu's SQLAlchemy transport over a second SQLite file as the broker.
"""

from __future__ import annotations

import base64
import os
import secrets
from datetime import timedelta
from functools import lru_cache
from ipaddress import IPv4Network, IPv6Network, ip_network
from pathlib import Path
from typing import Literal
from urllib.parse import parse_qsl, urlsplit, urlunsplit

from pydantic import Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

EMBEDDED_BROKER_SCHEME = "sqla+sqlite"


class Settings(BaseSettings):
    """Settings for every process: API, worker, relay/scheduler and the command line."""

    model_config = SettingsConfigDict(env_prefix="ACCRUAL_", env_file=".env", extra="ignore")

    data_dir: Path = Field(default=Path("accrual-data"), description="Where embedded state lives.")
    database_url: str = Field(default="", description="SQLAlchemy URL; SQLite file in data_dir if empty.")
    broker_url: str = Field(default="", description="Celery broker URL; embedded SQLite broker if empty.")
    secret_key: str = Field(
        default="",
        description="Signs pagination cursors and dashboard sessions; generated into data_dir if empty.",
    )
    data_keys: SecretStr = Field(
        default=SecretStr(""),
        description="Keys sealing clinical data at rest, `id:base64,...`, first current; generated if empty.",
    )
    audit_keys: SecretStr = Field(
        default=SecretStr(""),
        description="HMAC keys chaining the audit trail, `id:base64,...`, first current; generated if empty.",
    )
    session_cookie_secure: bool = Field(
        default=False, description="Send the dashboard's session cookie over HTTPS only (set it behind TLS)."
    )
    session_hours: float = Field(
        default=8, gt=0, le=24 * 30, description="A dashboard sign-in lasts this long."
    )
    session_idle_minutes: float = Field(
        default=30,
        gt=0,
        le=24 * 60,
        description="A dashboard session unused this long ends: the browser must sign in again.",
    )
    env: Literal["development", "production"] = Field(
        default="development",
        description="production refuses settings that would carry data in clear: a PostgreSQL URL without "
        "sslmode=require (or verify-ca, verify-full), redis:// instead of rediss://, SMTP without TLS, "
        "webhooks to plain http:// or private addresses, a session cookie not marked Secure.",
    )

    relay_interval_seconds: float = Field(
        default=0.05, gt=0, le=10, description="How often an idle relay polls when nothing can wake it."
    )
    wakeup_poll_seconds: float = Field(
        default=1.0,
        gt=0,
        le=60,
        description="Where commits wake the relay and the dispatchers (PostgreSQL LISTEN/NOTIFY, named pipes "
        "beside a SQLite file), how often they still poll, as a safety net.",
    )
    broker_poll_interval_seconds: float = Field(
        default=0.05,
        gt=0,
        le=10,
        description="How often a worker polls the embedded broker if nothing wakes it.",
    )
    sweep_interval_seconds: float = Field(default=15, gt=0)
    sweep_after_seconds: float = Field(
        default=60, gt=0, description="Undecided for this long: publish again."
    )
    broker_purge_interval_seconds: float = Field(default=300, gt=0)
    recount_interval_seconds: float = Field(
        default=300, gt=0, description="How often applications the counters missed are counted."
    )
    outbox_max_attempts: int = Field(default=50, ge=1)
    outbox_lease_seconds: float = Field(
        default=60,
        gt=0,
        le=3600,
        description="How long a relay holds the events it claimed; those of a relay that died are "
        "claimed again after it.",
    )
    event_retention_days: int = Field(
        default=30,
        ge=1,
        le=3660,
        description="Published events older than this are purged from the outbox (once no pending webhook "
        "delivery, e-mail or re-screening needs them); the feed answers a cursor before the purge 410. "
        "Must outlast the webhook retry schedule.",
    )
    event_purge_interval_seconds: float = Field(default=3600, gt=0)

    worker_concurrency: int = Field(default=2, ge=1, le=64)
    api_workers: int = Field(default=2, ge=1, le=64)
    api_threads: int = Field(default=4, ge=1, le=64)
    api_max_queue_seconds: float = Field(
        default=3.0,
        ge=0,
        le=600,
        description="A request that waited longer than this for a server thread gets 503 and Retry-After "
        "before any work; 0 turns shedding off.",
    )
    task_soft_time_limit: int = Field(default=60, ge=1)
    task_time_limit: int = Field(default=90, ge=2)
    visibility_timeout: int = Field(default=900, ge=10)
    screening_max_deliveries: int = Field(
        default=3,
        ge=1,
        description="Deliveries of one screening before it is dead-lettered: after a task killed its worker "
        "this many times, the next delivery sends the application to review instead of evaluating it.",
    )
    worker_heartbeat_seconds: float = Field(
        default=1.0,
        gt=0,
        le=60,
        description="How often a worker writes its heartbeat; the scheduler takes one silent for 5 of them "
        "for dead and publishes the screenings in flight again at once.",
    )
    screening_batch_size: int = Field(
        default=20,
        ge=1,
        le=500,
        description="Applications the relay hands a worker in one screening message, decided in one "
        "transaction (1: a message per application).",
    )

    webhook_allow_private: bool = Field(
        default=False,
        description="Let webhooks go to plain http:// and to loopback, private or link-local addresses.",
    )
    webhook_allowed_ports: str = Field(
        default="443,8443",
        description="Comma-separated ports https:// webhooks may use; any when private targets are allowed.",
    )
    webhook_retry_schedule: str = Field(
        default="5,300,1800,7200,18000,36000,50400,72000,86400",
        description="Seconds between a delivery's attempts (jittered by 20%); about three days by default.",
    )
    webhook_timeout_seconds: float = Field(default=10, gt=0, le=60)
    webhook_dispatch_interval_seconds: float = Field(default=0.5, gt=0, le=60)
    webhook_disable_after_hours: float = Field(
        default=120, gt=0, description="A subscription whose endpoint has failed this long is disabled."
    )
    webhook_secret_overlap_hours: float = Field(
        default=24,
        ge=0,
        le=24 * 30,
        description="After a webhook's secret is rotated, deliveries carry a signature with the old secret "
        "too, for this long, so that the receiver can switch without losing one.",
    )

    smtp_host: str = Field(
        default="", description="SMTP server for coordinators' e-mail; e-mail is off if empty."
    )
    smtp_port: int = Field(default=587, ge=1, le=65535)
    smtp_security: Literal["starttls", "ssl", "none"] = Field(
        default="starttls", description="starttls on 587, ssl (implicit TLS) on 465, none only on loopback."
    )
    smtp_username: str = Field(default="")
    smtp_password: SecretStr = Field(default=SecretStr(""))
    smtp_from: str = Field(default="accrual@localhost", description="The From address of notifications.")
    smtp_timeout_seconds: float = Field(default=10, gt=0, le=120)
    mail_retry_schedule: str = Field(
        default="60,300,1800,7200,21600,43200",
        description="Seconds between an e-mail's attempts; failed after the last (about 20 hours).",
    )
    public_url: str = Field(
        default="http://127.0.0.1:8000", description="Where people reach this service; e-mails link to it."
    )

    rate_limit_intake_per_token: str = Field(default="120/minute", description="Submissions per token.")
    rate_limit_intake_per_address: str = Field(default="600/minute", description="Submissions per address.")
    rate_limit_auth_failures: str = Field(
        default="30/minute", description="Failed authentications per address before it must wait."
    )
    rate_limit_storage_url: str = Field(
        default="", description="limits storage URL; the Redis broker, else process memory, if empty."
    )
    trusted_proxies: int = Field(
        default=0,
        ge=0,
        le=10,
        description="Reverse proxies in front of the API whose X-Forwarded-For and X-Forwarded-Proto are "
        "believed; 0: the client is the socket's peer and those headers are ignored.",
    )

    metrics_allowed_networks: str = Field(
        default="127.0.0.0/8,::1/128",
        description="Comma-separated networks (CIDR) whose addresses /metrics answers; others get 404.",
    )
    metrics_cache_seconds: float = Field(
        default=5,
        ge=0,
        le=3600,
        description="/metrics reads the database at most once per this many seconds per API process; "
        "0 reads it on every scrape.",
    )

    idempotency_ttl_hours: int = Field(default=24, ge=1)
    require_if_match: bool = Field(
        default=False,
        description="PATCH of an application needs If-Match with the ETag of the caller's last read "
        "(428 without it), so that no correction overwrites another unseen (lost updates).",
    )
    small_cell_threshold: int = Field(
        default=11,
        ge=0,
        le=1000,
        description="Sponsors' answers hide every count below the trial level from 1 to this minus one "
        "(and the cells that would give one away); 0 turns it off. 11 is the CMS cell-size rule.",
    )
    max_body_bytes: int = Field(default=1024 * 1024, ge=1024)
    page_size_max: int = Field(default=200, ge=1)
    log_level: str = Field(default="INFO")

    @field_validator(
        "rate_limit_intake_per_token", "rate_limit_intake_per_address", "rate_limit_auth_failures"
    )
    @classmethod
    def _a_rate(cls, value: str) -> str:
        from limits import parse

        parse(value)  # raises ValueError naming what it could not read
        return value

    @field_validator("webhook_allowed_ports")
    @classmethod
    def _port_list(cls, value: str) -> str:
        try:
            ports = _ports(value)
        except ValueError:
            ports = frozenset()
        if not ports or any(not 0 < port < 65536 for port in ports):
            raise ValueError("ACCRUAL_WEBHOOK_ALLOWED_PORTS must be comma-separated ports from 1 to 65535")
        return value

    @field_validator("metrics_allowed_networks")
    @classmethod
    def _network_list(cls, value: str) -> str:
        try:
            _networks(value)
        except ValueError as wrong:
            raise ValueError(
                f"ACCRUAL_METRICS_ALLOWED_NETWORKS must be comma-separated networks such as "
                f"127.0.0.0/8,::1/128 ({wrong})"
            ) from None
        return value

    @field_validator("data_dir")
    @classmethod
    def _absolute(cls, value: Path) -> Path:
        return value.expanduser().resolve()

    @model_validator(mode="after")
    def _embedded_defaults(self) -> Settings:
        if not self.database_url:
            self.database_url = f"sqlite:///{self.data_dir / 'accrual.db'}"
        if not self.broker_url:
            self.broker_url = f"{EMBEDDED_BROKER_SCHEME}:///{self.data_dir / 'broker.db'}"
        if self.task_time_limit * 3 > self.visibility_timeout:
            raise ValueError("ACCRUAL_VISIBILITY_TIMEOUT must be at least 3 x ACCRUAL_TASK_TIME_LIMIT")
        for variable, schedule in (
            ("ACCRUAL_WEBHOOK_RETRY_SCHEDULE", self.webhook_retry_schedule),
            ("ACCRUAL_MAIL_RETRY_SCHEDULE", self.mail_retry_schedule),
        ):
            try:
                delays = _seconds(schedule)
            except ValueError:
                raise ValueError(f"{variable} must be comma-separated seconds") from None
            if any(delay < 0 for delay in delays):
                raise ValueError(f"{variable} must not hold a negative delay")
        if self.task_soft_time_limit >= self.task_time_limit:
            raise ValueError("ACCRUAL_TASK_SOFT_TIME_LIMIT must be below ACCRUAL_TASK_TIME_LIMIT")
        if self.env == "production":
            _refuse_clear_transport(self)
        return self

    @model_validator(mode="after")
    def _retention_outlasts_webhook_retries(self) -> Settings:
        # A delivery rebuilds its body from the event at every attempt: a purge inside the schedule's
        # longest run (each delay jittered up to 20% longer) would leave it nothing to send.
        longest = sum(_seconds(self.webhook_retry_schedule)) * 1.2
        if self.event_retention_days * 86400 < longest:
            raise ValueError(
                f"ACCRUAL_EVENT_RETENTION_DAYS must cover ACCRUAL_WEBHOOK_RETRY_SCHEDULE "
                f"({longest / 86400:.1f} days with jitter)"
            )
        return self

    @property
    def webhook_delays(self) -> list[float]:
        """The retry schedule as seconds; validated when the settings are read."""
        return _seconds(self.webhook_retry_schedule)

    @property
    def webhook_ports(self) -> frozenset[int]:
        """The ports https:// webhooks may use; validated when the settings are read."""
        return _ports(self.webhook_allowed_ports)

    @property
    def mail_delays(self) -> list[float]:
        return _seconds(self.mail_retry_schedule)

    @property
    def metrics_networks(self) -> list[IPv4Network | IPv6Network]:
        """The networks /metrics answers; validated when the settings are read."""
        return _networks(self.metrics_allowed_networks)

    @property
    def outbox_lease(self) -> timedelta:
        return timedelta(seconds=self.outbox_lease_seconds)

    @property
    def mail_enabled(self) -> bool:
        return bool(self.smtp_host)

    @property
    def uses_sqlite(self) -> bool:
        return self.database_url.startswith("sqlite")

    @property
    def uses_embedded_broker(self) -> bool:
        return self.broker_url.startswith(EMBEDDED_BROKER_SCHEME)

    def data_keyring_text(self) -> str:
        """The configured data keys, else one key generated once and kept in the data directory."""
        if self.data_keys.get_secret_value():
            return self.data_keys.get_secret_value()
        return _kept_secret(
            self.data_dir / "data_keys", "k1:" + base64.b64encode(secrets.token_bytes(32)).decode()
        )

    def audit_keys_text(self) -> str:
        """The configured audit keys, else one key generated once and kept in the data directory."""
        if self.audit_keys.get_secret_value():
            return self.audit_keys.get_secret_value()
        return _kept_secret(
            self.data_dir / "audit_keys", "a1:" + base64.b64encode(secrets.token_bytes(32)).decode()
        )

    def signing_key(self) -> bytes:
        """The configured secret, else one generated once and kept in the data directory."""
        if self.secret_key:
            return self.secret_key.encode()
        return _kept_secret(self.data_dir / "secret_key", secrets.token_urlsafe(48)).encode()


TLS_SSLMODES = frozenset({"require", "verify-ca", "verify-full"})


def _clear_transport(settings: Settings) -> list[str]:
    """What would carry data over the network in clear; an embedded SQLite file or broker goes nowhere."""
    clear: list[str] = []
    database = urlsplit(settings.database_url)
    sslmode = dict(parse_qsl(database.query)).get("sslmode")
    if database.scheme.startswith("postgresql") and database.hostname and sslmode not in TLS_SSLMODES:
        clear.append("ACCRUAL_DATABASE_URL needs sslmode=require, verify-ca or verify-full")
    for variable, url in (
        ("ACCRUAL_BROKER_URL", settings.broker_url),
        ("ACCRUAL_RATE_LIMIT_STORAGE_URL", settings.rate_limit_storage_url),
    ):
        if urlsplit(url).scheme in ("redis", "amqp"):
            clear.append(f"{variable} must use TLS (rediss://, amqps://)")
    if settings.smtp_host and settings.smtp_security == "none":
        clear.append("ACCRUAL_SMTP_SECURITY must be starttls or ssl")
    if settings.webhook_allow_private:
        clear.append("ACCRUAL_WEBHOOK_ALLOW_PRIVATE must be off (webhooks over https:// to public addresses)")
    if not settings.session_cookie_secure:
        clear.append("ACCRUAL_SESSION_COOKIE_SECURE must be on (the service is served over HTTPS)")
    return clear


def _refuse_clear_transport(settings: Settings) -> None:
    clear = _clear_transport(settings)
    if clear:
        raise ValueError("ACCRUAL_ENV=production refuses plain-text transport: " + "; ".join(clear))


def _kept_secret(path: Path, fresh: str) -> str:
    """The secret in `path`, written there first if there is none. Processes starting together on a
    new data directory all end up with the same one: each writes its own candidate aside and links
    it into place, and only the first link succeeds."""
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        candidate = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}")
        candidate.touch(mode=0o600)
        candidate.write_text(fresh)
        try:
            os.link(candidate, path)
        except FileExistsError:
            pass
        finally:
            candidate.unlink()
    return path.read_text().strip()


def _seconds(schedule: str) -> list[float]:
    return [float(part) for part in schedule.split(",") if part.strip()]


def _ports(ports: str) -> frozenset[int]:
    return frozenset(int(part) for part in ports.split(",") if part.strip())


def _networks(text: str) -> list[IPv4Network | IPv6Network]:
    return [ip_network(part.strip()) for part in text.split(",") if part.strip()]


def redact_url(url: str) -> str:
    """The URL without its password, fit for a log line or an error message."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    netloc = parts.netloc.replace(f":{parts.password}@", ":***@")
    return urlunsplit(parts._replace(netloc=netloc))


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """The process-wide settings, read once."""
    return Settings()
