"""Persistence: typed SQLAlchemy 2.x models, the engine and session factory, Alembic migrations."""

from models.application import Application, ApplicationHistory, PreviousValues, Screening
from models.audit import AuditEntry, AuditHead, AuditPending
from models.base import Base
from models.catalog import CatalogKind, CatalogVersion
from models.dose import DoseAssignment, DoseEscalation
from models.enums import (
    ApplicationStatus,
    CriterionKind,
    Decision,
    EventStatus,
    Outcome,
    Role,
    TrialStatus,
    WithdrawalReason,
)
from models.event import Event, ProcessedMessage, SchedulerLease, WorkerHeartbeat
from models.mail import EmailMessage
from models.randomisation import Allocation, RandomisationScheme
from models.reporting import CountChange, CountedApplication, ScreenFailureCount, StatusCount, WeeklyCount
from models.token import ApiToken, IdempotencyRecord
from models.trial import CriteriaVersion, Site, Trial
from models.webhook import WebhookAttempt, WebhookDelivery, WebhookSubscription

__all__ = [
    "Allocation",
    "ApiToken",
    "Application",
    "ApplicationHistory",
    "ApplicationStatus",
    "AuditEntry",
    "AuditHead",
    "AuditPending",
    "Base",
    "CatalogKind",
    "CatalogVersion",
    "CountChange",
    "CountedApplication",
    "CriteriaVersion",
    "CriterionKind",
    "Decision",
    "DoseAssignment",
    "DoseEscalation",
    "EmailMessage",
    "Event",
    "EventStatus",
    "IdempotencyRecord",
    "Outcome",
    "PreviousValues",
    "ProcessedMessage",
    "RandomisationScheme",
    "Role",
    "SchedulerLease",
    "ScreenFailureCount",
    "Screening",
    "Site",
    "StatusCount",
    "Trial",
    "TrialStatus",
    "WebhookAttempt",
    "WebhookDelivery",
    "WebhookSubscription",
    "WeeklyCount",
    "WithdrawalReason",
    "WorkerHeartbeat",
]
