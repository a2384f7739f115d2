"""
Alerts: tell operators, once per incident, that a job needs them.

An incident opens with the first bad news about a job (a failed, lost, missed or
skipped run, an overdue job, an auto-pause) and closes with its next successful
run, which raises `job_recovered`. Within an incident each event is raised once:
five failures in a row are one `run_failed`. The events already raised live in the
job's `JobHealth.incident`, changed under that row's lock, so two processes
recording outcomes of one job at once cannot both raise the same alert.

Raising an alert writes an `Alert` row in the caller's transaction; after commit it
sends the event's signal (`scheduler_app.signals`) and hands the alert to a
background delivery thread (always the same one for a job, so its alerts arrive in
the order they were raised) for the channels of `SCHEDULER_APP["ALERTS"]`: email to
`settings.ADMINS` through Django's mail, and webhooks, POSTed as JSON signed with
HMAC-SHA256 (`X-Scheduler-Signature: sha256=<hex>`). Each delivery attempt has a
timeout, failed attempts are retried with doubling back-off, and the final outcome
of every channel is written back to the `Alert` row (the admin's alert log and
`manage.py scheduler alerts` show it). Nothing here ever runs a network call in
the scheduler loop or in a job's run.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import queue
import threading
import time
import urllib.request
import zlib
from collections.abc import Callable
from datetime import datetime

from django.core.mail import mail_admins
from django.db import DatabaseError, connections, transaction
from django_apscheduler.models import DjangoJob

from scheduler_app.conf import app_settings
from scheduler_app.models import Alert, JobHealth, JobRecord
from scheduler_app.registry import registry
from scheduler_app.signals import ALERT_SIGNALS

logger = logging.getLogger(__name__)

SIGNATURE_HEADER = "X-Scheduler-Signature"
RECOVERED = Alert.Event.JOB_RECOVERED
# Seconds before the first retry of a failed delivery; doubled after each attempt.
FIRST_RETRY_DELAY = 1.0
DELIVERY_THREADS = 2


def alerts_muted(job_id: str) -> bool:
    """Whether code declared the job with `alerts=False`."""
    declaration = registry.get(job_id)
    return declaration is not None and not declaration.alerts


def alert_after(job_id: str) -> int:
    """Seconds a job may go without a successful run after one was due."""
    chosen = JobRecord.objects.filter(job_id=job_id).values_list("alert_after", flat=True).first()
    return effective_alert_after(job_id, chosen)


def effective_alert_after(job_id: str, chosen: int | None) -> int:
    """`alert_after` of a job whose run policy says `chosen`: the operator's value
    first, then the job's `alert_after` in code, then `SCHEDULER_APP["ALERT_AFTER"]`."""
    if chosen is None:
        declaration = registry.get(job_id)
        chosen = declaration.alert_after if declaration else None
    return chosen if chosen is not None else app_settings.ALERT_AFTER


def raise_alert(
    *, event: str, job_id: str, message: str, run_time: datetime | None = None
) -> Alert | None:
    """Raise `event` about a job, unless its open incident already did or it is muted.

    `job_recovered` is raised only when the job has an open incident, and closes
    it. Returns the alert written, or None when nothing was raised.
    """
    if event not in ALERT_SIGNALS:
        raise ValueError(f"Unknown alert event {event!r}; known: {', '.join(ALERT_SIGNALS)}")
    with transaction.atomic():
        health = locked_health(job_id)
        if health is None:
            return None
        return raise_for(health, event=event, message=message, run_time=run_time)


def locked_health(job_id: str) -> JobHealth | None:
    """The job's health row, locked for this transaction (made if missing); None if no job."""
    health = JobHealth.objects.select_for_update().filter(job_id=job_id).first()
    if health is None:
        if not DjangoJob.objects.filter(id=job_id).exists():
            return None
        health, _ = JobHealth.objects.select_for_update().get_or_create(job_id=job_id)
    return health


def raise_for(
    health: JobHealth, *, event: str, message: str, run_time: datetime | None = None
) -> Alert | None:
    """`raise_alert` for a health row the caller holds locked; saves its `incident`."""
    if event == RECOVERED:
        if not health.incident:
            return None
        health.incident = []
    elif event in health.incident:
        return None
    else:
        health.incident = [*health.incident, event]
    health.save(update_fields=["incident"])
    if alerts_muted(health.job_id):
        return None
    alert = Alert.objects.create(
        event=event,
        job_id=health.job_id,
        run_time=run_time,
        message=message[:2000],
        delivery=Alert.Delivery.PENDING if _channels() else Alert.Delivery.NO_CHANNELS,
    )
    logger.warning("Alert %s for job %r: %s", event, health.job_id, message)
    transaction.on_commit(lambda: _announce(alert))
    return alert


def webhook_body(alert: Alert) -> bytes:
    """The JSON a webhook receives for an alert."""
    return json.dumps({
        "event": alert.event,
        "job": alert.job_id,
        "run_time": alert.run_time and alert.run_time.isoformat(),
        "message": alert.message,
        "occurred_at": alert.occurred_at.isoformat(),
        "alert_id": alert.id,
    }).encode()


def signature(body: bytes, secret: str) -> str:
    """The `X-Scheduler-Signature` header value of a body."""
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def wait_for_deliveries(timeout: float) -> bool:
    """Wait up to `timeout` seconds for queued deliveries to end; False if some did not."""
    deadline = time.monotonic() + timeout
    while any(pending.unfinished_tasks for pending in _pending):
        if time.monotonic() >= deadline:
            return False
        time.sleep(0.05)
    return True


def _channels() -> list[tuple[str, Callable[[Alert], None]]]:
    """(name, send) for every configured channel; each send raises if delivery failed."""
    config = app_settings.alerts
    channels: list[tuple[str, Callable[[Alert], None]]] = []
    if config["email"]:
        channels.append(("email to ADMINS", _send_email))
    for webhook in config["webhooks"]:
        channels.append((f"webhook {webhook['url']}", _webhook_sender(webhook, config["timeout"])))
    return channels


def _send_email(alert: Alert) -> None:
    subject = f"{alert.get_event_display()}: {alert.job_id}"
    lines = [alert.message, "", f"Job: {alert.job_id}", f"Event: {alert.event}"]
    if alert.run_time:
        lines.append(f"Run time: {alert.run_time.isoformat()}")
    lines.append(f"Raised at: {alert.occurred_at.isoformat()}")
    mail_admins(subject, "\n".join(lines), fail_silently=False)


def _webhook_sender(webhook: dict[str, str], timeout: float) -> Callable[[Alert], None]:
    def send(alert: Alert) -> None:
        body = webhook_body(alert)
        request = urllib.request.Request(
            webhook["url"],
            data=body,
            method="POST",
            headers={
                "Content-Type": "application/json",
                "User-Agent": "scheduler_app alerts",
                SIGNATURE_HEADER: signature(body, webhook["secret"]),
            },
        )
        # urlopen raises for any answer outside 2xx-3xx, and on timeout.
        with urllib.request.urlopen(request, timeout=timeout) as response:  # noqa: S310 - the configured URL
            response.read()

    return send


def _announce(alert: Alert) -> None:
    """After commit: the signal, then delivery in the background."""
    for receiver, error in ALERT_SIGNALS[alert.event].send_robust(
        sender="scheduler_app",
        event=alert.event,
        job=alert.job_id,
        run_time=alert.run_time,
        message=alert.message,
        occurred_at=alert.occurred_at,
    ):
        if isinstance(error, Exception):
            logger.error("Alert receiver %r failed: %r", receiver, error)
    if alert.delivery == Alert.Delivery.PENDING:
        _start_delivery_threads()
        # A job's alerts always go to the same thread, so a receiver gets them in the
        # order they were raised: a recovery delivered before the failure it ends
        # would leave the receiver's incident open.
        _pending[zlib.crc32(alert.job_id.encode()) % DELIVERY_THREADS].put(alert)


# One queue per delivery thread.
_pending: list[queue.Queue[Alert]] = [queue.Queue() for _ in range(DELIVERY_THREADS)]
_threads_lock = threading.Lock()
_threads: list[threading.Thread] = []


def _start_delivery_threads() -> None:
    with _threads_lock:
        if _threads:
            return
        for number, pending in enumerate(_pending):
            # Daemon threads: a receiver that hangs must not keep the process alive.
            thread = threading.Thread(
                target=_deliver_forever, args=(pending,), name=f"scheduler-alerts-{number}",
                daemon=True,
            )
            thread.start()
            _threads.append(thread)


def _deliver_forever(pending: queue.Queue[Alert]) -> None:
    while True:
        alert = pending.get()
        try:
            _deliver(alert)
        except Exception:
            logger.exception("Delivering alert %s failed unexpectedly", alert.id)
        finally:
            connections.close_all()
            pending.task_done()


def _deliver(alert: Alert) -> None:
    config = app_settings.alerts
    results = []
    failed = False
    for name, send in _channels():
        outcome = _attempt(send, alert, retries=config["retries"])
        failed = failed or outcome is not None
        if outcome is None:
            results.append(f"{name}: delivered")
        else:
            results.append(f"{name}: failed after {config['retries'] + 1} attempt(s): {outcome}")
            logger.error("Alert %s (%s for %r) not delivered by %s: %s",
                         alert.id, alert.event, alert.job_id, name, outcome)
    try:
        Alert.objects.filter(id=alert.id).update(
            delivery=Alert.Delivery.FAILED if failed else Alert.Delivery.DELIVERED,
            delivery_detail="\n".join(results),
        )
    except DatabaseError as error:
        logger.error("Could not record the delivery of alert %s: %s", alert.id, error)


def _attempt(send: Callable[[Alert], None], alert: Alert, *, retries: int) -> str | None:
    """Send with retries; None if it went through, else the last error."""
    delay = FIRST_RETRY_DELAY
    error: Exception | None = None
    for attempt in range(retries + 1):
        if attempt:
            time.sleep(delay)
            delay *= 2
        try:
            send(alert)
        except Exception as failure:  # any network, HTTP or mail error is retried
            error = failure
        else:
            return None
    return f"{type(error).__name__}: {error}"[:500]
