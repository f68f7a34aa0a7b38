"""Alerting: PagerDuty Events API v2 and JSON webhooks through a durable SQLite outbox.

* :mod:`~goldwatch.watchdog.alerts.events` -- typed events, the PagerDuty wire format, size limits and trimming
* :mod:`~goldwatch.watchdog.alerts.dedup` -- deterministic dedup keys and the book of open incidents
* :mod:`~goldwatch.watchdog.alerts.outbox` -- store before send, delete after 202, retries, dead letters, rate limit
* :mod:`~goldwatch.watchdog.alerts.sinks` -- :class:`PagerDutySink`, :class:`WebhookSink` (injectable transport)
* :mod:`~goldwatch.watchdog.alerts.manager` -- :class:`AlertManager`: trigger / resolve / change with the evidence
* :mod:`~goldwatch.watchdog.alerts.notify` -- :func:`notify_promotion`, :func:`notify_rollback`: change events and
  the rollback incident, with a short bounded flush (the rest stays in the outbox)

Only httpx and the standard library are imported here.
"""

from goldwatch.watchdog.alerts.dedup import Incident, IncidentBook, check_class, dedup_key
from goldwatch.watchdog.alerts.events import AlertEvent, ChangeEvent, Image, Link, Severity, truncate_text
from goldwatch.watchdog.alerts.manager import (
    ActionTaken,
    AlertManager,
    AlertOutcome,
    Timing,
    build_sinks,
    default_severity,
    page_fingerprint,
)
from goldwatch.watchdog.alerts.notify import NotifyResult, notify_promotion, notify_rollback
from goldwatch.watchdog.alerts.outbox import DeliveryReport, Outbox, OutboxEntry, RetryPolicy
from goldwatch.watchdog.alerts.sinks import PagerDutySink, SendResult, Sink, WebhookSink

__all__ = [
    "ActionTaken",
    "AlertEvent",
    "AlertManager",
    "AlertOutcome",
    "ChangeEvent",
    "DeliveryReport",
    "Image",
    "Incident",
    "IncidentBook",
    "Link",
    "NotifyResult",
    "Outbox",
    "OutboxEntry",
    "PagerDutySink",
    "RetryPolicy",
    "SendResult",
    "Severity",
    "Sink",
    "Timing",
    "WebhookSink",
    "build_sinks",
    "check_class",
    "dedup_key",
    "default_severity",
    "notify_promotion",
    "notify_rollback",
    "page_fingerprint",
    "truncate_text",
]
