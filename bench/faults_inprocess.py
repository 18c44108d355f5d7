"""Fault scenarios of issue 14 that run inside one process: 1 rollback, 5 partner faults, 7 stale grants, 8 duplicates.

    .venv/bin/python bench/faults_inprocess.py [--quick] [--only rollback,partner_faults,...]

A throwaway SQLite database unless DATABASE_URL points at a scratch database (PostgreSQL makes the
threaded scenarios meaningful: SQLite runs one write transaction at a time). Each scenario builds its
own partners, purposes and consumers under a fresh tag, so runs do not see each other's rows, and
prints one line::

    scenario=<name> load=<n> faults=<n> lost=<n> duplicates_applied=<n> recovery_s=<x.x>

Partners are real HTTP servers on 127.0.0.1 (threads of this process) that record every delivery by
``webhook-id`` and apply each id once, as the docs tell partners to. Delivery tasks are not sent to
a broker: the after-commit enqueue and the retry enqueue put them on an in-process FIFO that
``DeliverySlots`` threads drain by calling the task's body (``outbox_events_send``), like a Celery
worker with that many processes and a prefetch of one. ``bench/faults.py`` runs the scenarios that
need real processes (kill, broker and database outages) and imports ``SCENARIOS`` from here.

What counts as lost or a duplicate is scenario-specific and said in each scenario's docstring.
"""

import argparse
import contextlib
import heapq
import itertools
import json
import os
import random
import socket
import struct
import sys
import tempfile
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from functools import partial
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent


@dataclass
class Outcome:
    """One scenario's figures, plus the details its test asserts on."""

    scenario: str
    load: int
    faults: int
    lost: int
    duplicates_applied: int
    recovery_s: float
    details: dict[str, Any] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return {
            "scenario": self.scenario,
            "load": self.load,
            "faults": self.faults,
            "lost": self.lost,
            "duplicates_applied": self.duplicates_applied,
            "recovery_s": round(self.recovery_s, 1),
        }

    def line(self) -> str:
        return (
            f"scenario={self.scenario} load={self.load} faults={self.faults} lost={self.lost}"
            f" duplicates_applied={self.duplicates_applied} recovery_s={self.recovery_s:.1f}"
        )


# Partners ------------------------------------------------------------------------------------


@dataclass
class Delivery:
    webhook_id: str
    payload: dict[str, Any]
    started: float  # time.monotonic(), which time travel leaves alone
    answered: float = 0.0
    status: int | None = None  # None: no answer (reset, or the client gave up first)


class Receiver:
    """A partner's webhook endpoint on 127.0.0.1 that records every request and answers as ``behave`` says.

    ``behave`` is ``("ok", 0)``, ``("status", code)``, ``("slow", seconds)`` (then 200) or ``("reset", 0)``
    (the connection is closed with a TCP reset, no answer). A 2xx answer *applies* the event: the first
    time for each ``webhook-id`` (later ones are redeliveries, ignored as the docs tell partners to).
    """

    def __init__(self, name: str) -> None:
        self.name = name
        self.behave: tuple[str, float] = ("ok", 0)
        self.deliveries: list[Delivery] = []
        self.applied: dict[str, dict[str, Any]] = {}
        self.in_flight = 0
        self.lock = threading.Lock()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                record = Delivery(self.headers.get("webhook-id", ""), json.loads(body or b"{}"), time.monotonic())
                with receiver.lock:
                    receiver.deliveries.append(record)
                    receiver.in_flight += 1
                    mode, value = receiver.behave
                try:
                    self._answer(record, mode, value)
                finally:
                    with receiver.lock:
                        receiver.in_flight -= 1

            def _answer(self, record: Delivery, mode: str, value: float) -> None:
                if mode == "reset":
                    # SO_LINGER 0: close() sends RST instead of FIN.
                    self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                    self.connection.close()  # before socketserver's shutdown(), which would send a FIN first
                    self.close_connection = True
                    record.answered = time.monotonic()
                    return
                if mode == "slow":
                    time.sleep(value)
                status = int(value) if mode == "status" else 200
                try:
                    self.send_response(status)
                    self.send_header("Content-Length", "2")
                    self.end_headers()
                    self.wfile.write(b"ok")
                except OSError:
                    return  # the client timed out and left
                record.answered, record.status = time.monotonic(), status
                if 200 <= status < 300:
                    with receiver.lock:
                        receiver.applied.setdefault(record.webhook_id, record.payload)

            def log_message(self, format: str, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}/webhooks/{self.name}"

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def change_key(payload: dict[str, Any]) -> tuple[str, str, str, str]:
    """What a partner applies: this subject's consent to this purpose changed so at that time."""
    data = payload.get("data", {})
    return (data.get("subject_id", ""), data.get("purpose", ""), payload.get("type", ""), payload.get("timestamp", ""))


def duplicates_applied(receiver: Receiver) -> int:
    """Changes the receiver applied more than once: the same change under more than one ``webhook-id``."""
    counts = Counter(change_key(payload) for payload in receiver.applied.values())
    return sum(n - 1 for n in counts.values() if n > 1)


# The delivery worker, in process ----------------------------------------------------------------


class DeliverySlots:
    """A FIFO of delivery tasks drained by ``slots`` threads, as a Celery worker with that many processes does.

    While active it stands in for the broker: ``delivery_queue`` (a retry due within a minute, a
    hand-off) and ``delivery_batch_queue`` (after commit) put tasks here, with their countdown,
    instead of publishing them. A task is a list of one partner's event ids, sent in turn.
    """

    def __init__(self, slots: int) -> None:
        self.slots = slots
        self.queue: list[tuple[float, int, list[str]]] = []
        self.order = itertools.count()
        self.cond = threading.Condition()
        self.busy = 0
        self.sent = 0
        self.open = False
        self.errors: list[BaseException] = []

    def put(self, event_ids: list[str], *, countdown: float = 0) -> None:
        self._push([[event_id] for event_id in event_ids], countdown)

    def put_batch(self, event_ids: list[str]) -> None:
        from consents.services.outbox import BATCH_MAX

        self._push([event_ids[n : n + BATCH_MAX] for n in range(0, len(event_ids), BATCH_MAX)], 0)

    def _push(self, tasks: list[list[str]], countdown: float) -> None:
        with self.cond:
            for task in tasks:
                heapq.heappush(self.queue, (time.monotonic() + (countdown or 0), next(self.order), task))
            self.cond.notify_all()

    @contextlib.contextmanager
    def installed(self) -> Iterator["DeliverySlots"]:
        from consents.services import delivery, outbox

        saved = outbox.delivery_queue, delivery.delivery_queue
        saved_batch = outbox.delivery_batch_queue, delivery.delivery_batch_queue
        outbox.delivery_queue = delivery.delivery_queue = self.put  # type: ignore[assignment]
        outbox.delivery_batch_queue = delivery.delivery_batch_queue = self.put_batch  # type: ignore[assignment]
        try:
            yield self
        finally:
            outbox.delivery_queue, delivery.delivery_queue = saved
            outbox.delivery_batch_queue, delivery.delivery_batch_queue = saved_batch

    @contextlib.contextmanager
    def running(self, *, timeout: float = 600) -> Iterator["DeliverySlots"]:
        """The slots work while the block runs (queueing more), then until nothing is left."""
        deadline = time.monotonic() + timeout
        self.open = True
        threads = [threading.Thread(target=self._work, args=(deadline,), daemon=True) for _ in range(self.slots)]
        for thread in threads:
            thread.start()
        try:
            yield self
        finally:
            with self.cond:
                self.open = False
                self.cond.notify_all()
            for thread in threads:
                thread.join(max(0.0, deadline - time.monotonic()) + 5)
        if self.errors:
            raise self.errors[0]

    def drain(self, *, timeout: float = 600) -> None:
        """Run the queued tasks (and those they queue) until none is left."""
        with self.running(timeout=timeout):
            pass

    def settle(self, *, timeout: float = 600) -> None:
        """Once the slots are idle, do what the relay does until nothing due is left: queue what waits.

        A deferred event whose hand-off was missed (an attempt ended just as the event was deferred)
        is the relay's to send; with no task in flight, waiting out its grace period proves nothing.
        """
        from django.test import override_settings

        from consents.services.outbox import outbox_due_requeue

        with override_settings(OUTBOX_RELAY_GRACE_SECONDS=0):
            while ids := outbox_due_requeue(limit=10_000):
                self.put([str(pk) for pk in ids])
                self.drain(timeout=timeout)

    def _work(self, deadline: float) -> None:
        from django.db import connection

        from consents.services.delivery import outbox_events_send

        try:
            while time.monotonic() < deadline:
                with self.cond:
                    while True:
                        if self.queue and self.queue[0][0] <= time.monotonic():
                            _due, _n, event_ids = heapq.heappop(self.queue)
                            self.busy += 1
                            break
                        if not self.queue and not self.busy and not self.open:
                            self.cond.notify_all()
                            return
                        wait = self.queue[0][0] - time.monotonic() if self.queue else 0.5
                        self.cond.wait(max(0.01, min(wait, 0.5)))
                try:
                    outbox_events_send(event_ids=event_ids)
                except BaseException as error:
                    self.errors.append(error)
                finally:
                    with self.cond:
                        self.busy -= 1
                        self.sent += 1
                        self.cond.notify_all()
        finally:
            connection.close()


# The world each scenario builds ------------------------------------------------------------------


def _tag() -> str:
    return uuid.uuid4().hex[:8]


def _purpose(tag: str, name: str) -> Any:
    from audit.services import Actor
    from consents.models import DataCategory, Purpose
    from consents.services.notices import purpose_version_publish

    category = DataCategory.objects.create(
        slug=f"{tag}-{name}-data", name=f"{name} data", translations={"zh-hans": {"name": f"{name} 数据"}}
    )
    purpose = Purpose.objects.create(slug=f"{tag}-{name}", name=f"{name} ({tag})", legal_basis="consent")
    purpose_version_publish(
        purpose=purpose,
        description=f"Fault suite purpose {name}.",
        retention="1 year",
        data_categories=[category],
        material=False,
        change_summary="",
        actor=Actor.system("fault suite"),
        translations={"zh-hans": {"name": "故障测试用途", "description": "故障测试。", "retention": "一年"}},
    )
    purpose.refresh_from_db()
    return purpose


def _partner(tag: str, name: str, *, url: str = "", purposes: tuple[Any, ...] = ()) -> Any:
    from consents.models import Partner, PartnerKind, Sharing

    partner = Partner.objects.create(
        slug=f"{tag}-{name}", name=f"{name} ({tag})", kind=PartnerKind.SERVICE_PROVIDER, country="DE", webhook_url=url
    )
    for purpose in purposes:
        sharing = Sharing.objects.create(partner=partner, purpose=purpose)
        sharing.data_categories.set(purpose.current_version.data_categories.all())
    return partner


def _consumers(tag: str, count: int) -> list[Any]:
    from portal.models import User

    return [User.objects.create_user(f"{tag}-{n}@example.com", None) for n in range(count)]


def _api_token(partner: Any, scopes: tuple[str, ...]) -> str:
    import base64

    from django.test import Client

    from audit.services import Actor
    from consents.services.partners import partner_credential_create

    credential, secret = partner_credential_create(
        partner=partner, label="faults", scopes=scopes, actor=Actor.system("fault suite")
    )
    basic = base64.b64encode(f"{credential.application.client_id}:{secret}".encode()).decode()
    response = Client().post(
        "/oauth/token/", {"grant_type": "client_credentials"}, headers={"authorization": f"Basic {basic}"}
    )
    assert response.status_code == 200, response.content
    return response.json()["access_token"]


@contextlib.contextmanager
def _loopback_partners(timeout: float | None = None, *, per_partner: int | None = None) -> Iterator[None]:
    """Webhooks may go to 127.0.0.1 (plain http), with this client timeout and per-partner cap."""
    from django.conf import settings
    from django.test import override_settings

    with override_settings(
        WEBHOOK_ALLOW_PRIVATE=True,
        WEBHOOK_TIMEOUT_SECONDS=timeout or settings.WEBHOOK_TIMEOUT_SECONDS,
        WEBHOOK_MAX_IN_FLIGHT_PER_PARTNER=per_partner or settings.WEBHOOK_MAX_IN_FLIGHT_PER_PARTNER,
    ):
        yield


@contextlib.contextmanager
def _closing(receivers: list[Receiver]) -> Iterator[list[Receiver]]:
    try:
        yield receivers
    finally:
        for receiver in receivers:
            receiver.close()


def _serial() -> contextlib.AbstractContextManager[Any]:
    """SQLite runs one write transaction at a time: threads take turns there, and run freely on PostgreSQL."""
    from django.db import connection

    return _SQLITE_LOCK if connection.vendor == "sqlite" else contextlib.nullcontext()


_SQLITE_LOCK = threading.RLock()


def _threads(work: Callable[[int], None], count: int) -> None:
    """Run ``work(i)`` on ``count`` threads, each with its own database connection; re-raise the first error."""
    from django.db import connection

    errors: list[BaseException] = []

    def run(i: int) -> None:
        try:
            work(i)
        except BaseException as error:
            errors.append(error)
        finally:
            connection.close()

    threads = [threading.Thread(target=run, args=(i,), daemon=True) for i in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    if errors:
        raise errors[0]


def _parallelism() -> int:
    from django.db import connection

    return 4 if connection.vendor == "postgresql" else 1


# 1. Rollback atomicity ---------------------------------------------------------------------------


class ForcedRollback(Exception):
    pass


def rollback_atomicity(*, changes: int, rollback_every: int = 10) -> Outcome:
    """Consent changes through the services, every ``rollback_every``-th rolled back after the service returned.

    Two purposes and three partners: ``both`` receives purposes A and B, ``a-only`` A, ``none``
    neither. Lost: a committed change without its receipt, audit event, outbox row per receiving
    partner, or delivery to that partner. Duplicates: any extra such record, or any record of a
    rolled-back change. Recovery: from the end of the load until every event was delivered (the
    delivery slots work during the load, as workers do).
    """
    from django.db import transaction

    from audit.models import AuditEvent
    from audit.services import Actor
    from audit.timestamps import iso_utc
    from consents.models import Consent, ConsentReceipt, OutboxEvent, PartnerSubject
    from consents.services.consents import consent_grant, consent_revoke

    tag = _tag()
    names = ("both", "a-only", "none")
    with _closing([Receiver(name) for name in names]) as receivers, _loopback_partners():
        purpose_a, purpose_b = _purpose(tag, "a"), _purpose(tag, "b")
        shares = {"both": (purpose_a, purpose_b), "a-only": (purpose_a,), "none": ()}
        partners = {r.name: _partner(tag, r.name, url=r.url, purposes=shares[r.name]) for r in receivers}
        by_partner = {partners[r.name].pk: r for r in receivers}
        users = _consumers(tag, max(8, changes // 25))
        slots = DeliverySlots(_parallelism())
        committed: list[tuple[int, int, str, str]] = []  # user, purpose, event, timestamp
        rolled_back: list[tuple[int, int, str, str]] = []
        lock = threading.Lock()
        workers = _parallelism()

        def load(worker: int) -> None:
            mine = users[worker::workers]
            granted: set[tuple[int, int]] = set()
            for n in range(worker, changes, workers):
                user = mine[(n // workers) % len(mine)]
                purpose = (purpose_a, purpose_b)[(n // (workers * len(mine))) % 2]
                revoke = (user.pk, purpose.pk) in granted
                service = consent_revoke if revoke else consent_grant
                doomed = n % rollback_every == rollback_every - 1
                try:
                    with _serial(), transaction.atomic():
                        consent = service(user=user, purpose=purpose, actor=Actor.consumer(user))
                        record = (user.pk, purpose.pk, "consent.revoked" if revoke else "consent.granted")
                        record += (iso_utc(consent.updated_at) or "",)
                        if doomed:
                            raise ForcedRollback
                except ForcedRollback:
                    with lock:
                        rolled_back.append(record)
                    continue
                with lock:
                    committed.append(record)
                granted.symmetric_difference_update({(user.pk, purpose.pk)})

        load_end = 0.0
        with slots.installed():
            with slots.running():
                _threads(load, workers)
                load_end = time.monotonic()
            slots.settle()
        recovery = time.monotonic() - load_end

        ours = list(partners.values())
        receiving = {p.pk: [partners[name].pk for name in names if p in shares[name]] for p in (purpose_a, purpose_b)}
        expected_rows = Counter(
            (partner_id, user_id, purpose_id, event, at)
            for user_id, purpose_id, event, at in committed
            for partner_id in receiving[purpose_id]
        )
        slug_to_purpose = {purpose_a.slug: purpose_a.pk, purpose_b.slug: purpose_b.pk}
        subject_user = dict(PartnerSubject.objects.filter(partner__in=ours).values_list("subject_id", "user_id"))
        rows = Counter()
        undelivered = 0
        for partner_id, status, payload in OutboxEvent.objects.filter(partner__in=ours).values_list(
            "partner_id", "status", "payload"
        ):
            subject, purpose_slug, event, at = change_key(payload)
            rows[(partner_id, subject_user[subject], slug_to_purpose[purpose_slug], event, at)] += 1
            undelivered += status != "delivered"
        applied = Counter()
        for partner_id, receiver in by_partner.items():
            for payload in receiver.applied.values():
                subject, purpose_slug, event, at = change_key(payload)
                applied[(partner_id, subject_user[subject], slug_to_purpose[purpose_slug], event, at)] += 1

        per_change = Counter((user_id, purpose_id, event) for user_id, purpose_id, event, _at in committed)
        receipts = Counter(
            (user_id, purpose_id, f"consent.{event}")
            for user_id, purpose_id, event in ConsentReceipt.objects.filter(
                consent__purpose__in=[purpose_a, purpose_b]
            ).values_list("user_id", "consent__purpose_id", "event")
        )
        audits = Counter(
            (user_id, slug_to_purpose[data["purpose"]], action)
            for user_id, action, data in AuditEvent.objects.filter(
                subject__in=users, action__in=["consent.granted", "consent.revoked"]
            ).values_list("subject_id", "action", "data")
        )
        versions = Consent.history.filter(purpose__in=[purpose_a, purpose_b]).count()

        rolled_back_keys = set(rolled_back)

        def missing(expected: Counter, actual: Counter) -> int:
            return sum((expected - actual).values())

        details = {
            "committed": len(committed),
            "rolled_back": len(rolled_back),
            "outbox_rows": sum(rows.values()),
            "outbox_expected": sum(expected_rows.values()),
            "outbox_missing": missing(expected_rows, rows),
            "outbox_extra": missing(rows, expected_rows),
            "receipts_missing": missing(per_change, receipts),
            "receipts_extra": missing(receipts, per_change),
            "audit_missing": missing(per_change, audits),
            "audit_extra": missing(audits, per_change),
            "history_rows": versions,
            "undelivered": undelivered,
            "delivered_missing": missing(expected_rows, applied),
            "delivered_extra": missing(applied, expected_rows),
            "rolled_back_traces": sum(
                n for counter in (rows, applied) for key, n in counter.items() if key[1:] in rolled_back_keys
            ),
            "partner_none_received": len(receivers[2].deliveries),
            "duplicates_by_receiver": sum(duplicates_applied(r) for r in receivers),
        }
    lost = sum(details[k] for k in ("outbox_missing", "receipts_missing", "audit_missing", "delivered_missing"))
    lost += max(0, details["committed"] - versions)
    extra = sum(details[k] for k in ("outbox_extra", "receipts_extra", "audit_extra", "delivered_extra"))
    extra += max(0, versions - details["committed"]) + details["duplicates_by_receiver"]
    return Outcome(
        "rollback_atomicity",
        load=changes,
        faults=len(rolled_back),
        lost=lost,
        duplicates_applied=extra,
        recovery_s=recovery,
        details=details,
    )


# 5. Partner faults -------------------------------------------------------------------------------

FAULTY = {
    # name: how the endpoint behaves, as (mode, value); "slow" and "timeout" get their delays from the run
    "healthy": ("ok", 0.0),
    "broken": ("status", 500.0),
    "timeout": ("slow", 0.0),
    "slow": ("slow", 0.0),
    "reset": ("reset", 0.0),
    "gone": ("status", 410.0),
}


def partner_faults(
    *, withdrawals: int, client_timeout: float, slow_s: float, slots: int = 4, per_partner: int = 1
) -> Outcome:
    """Withdrawals that reach six partners: healthy, 500, timing out, slow (< the client timeout), resetting, 410.

    The clock travels through the retry schedule: at each step the relay queues what is due and the
    delivery slots send it. Then the faulty partners recover, staff re-enable the 410 partner's
    webhook and re-drive every dead letter and feed-only event. Lost: an event not delivered to its
    partner at the end. Duplicates: a change a partner applied twice (under two ``webhook-id``s).
    Recovery: from the re-drive until everything was delivered. The details say whether each failing
    attempt waited its turn in the schedule, what the healthy partner's deliveries waited while slow
    and timing-out deliveries held slots, and how many healthy deliveries completed meanwhile.

    ``slots`` delivery slots (``runall``'s worker has 4), at most ``per_partner`` of them per partner
    (``WEBHOOK_MAX_IN_FLIGHT_PER_PARTNER``): the two slow partners can then hold two slots at most.
    """
    import time_machine
    from django.db import transaction
    from django.db.models import Max
    from django.utils import timezone

    from audit.services import Actor
    from consents.models import DeliveryAttempt, OutboxEvent, Partner
    from consents.services.consents import consent_grant, consent_revoke
    from consents.services.delivery import (
        MAX_ATTEMPTS,
        RETRY_JITTER,
        RETRY_SCHEDULE,
        outbox_event_redrive,
        partner_webhook_enable,
    )
    from consents.services.outbox import outbox_due_requeue

    tag = _tag()
    behaviour = dict(FAULTY, timeout=("slow", client_timeout * 2 + 1), slow=("slow", slow_s))
    with (
        _closing([Receiver(name) for name in FAULTY]) as receivers,
        _loopback_partners(client_timeout, per_partner=per_partner),
    ):
        by_name = {r.name: r for r in receivers}
        for receiver in receivers:
            receiver.behave = behaviour[receiver.name]
        purpose = _purpose(tag, "offers")
        users = _consumers(tag, withdrawals)
        for user in users:
            consent_grant(user=user, purpose=purpose, actor=Actor.consumer(user))
        # The partners start receiving after the grants, so their only events are the withdrawals.
        partners = {r.name: _partner(tag, r.name, url=r.url, purposes=(purpose,)) for r in receivers}
        ours = OutboxEvent.objects.filter(partner__in=partners.values())
        queue = DeliverySlots(slots)
        committed_at: dict[int, float] = {}
        with queue.installed(), time_machine.travel(timezone.now(), tick=True) as clock:
            with queue.running():
                for user in users:
                    with _serial(), transaction.atomic():
                        # Registered first, so it runs before the delivery enqueue the service registers.
                        transaction.on_commit(lambda user=user: committed_at.__setitem__(user.pk, time.monotonic()))
                        consent_revoke(user=user, purpose=purpose, actor=Actor.consumer(user))
            healthy = by_name["healthy"].deliveries
            event_user = {str(pk): user_id for pk, user_id in ours.values_list("pk", "consent__user_id")}
            healthy_waits = [d.answered - committed_at[event_user[d.webhook_id]] for d in healthy]
            # A request holds its slot until the answer, or until the client gives up.
            slow_windows = [
                (d.started, d.started + min((d.answered or d.started + client_timeout) - d.started, client_timeout))
                for name in ("slow", "timeout")
                for d in by_name[name].deliveries
            ]
            healthy_during_slow = sum(any(start < d.answered < end for start, end in slow_windows) for d in healthy)
            steps = 1
            while ours.filter(status__in=["pending", "retrying"]).exists() and steps < MAX_ATTEMPTS + 2:
                latest = ours.filter(status__in=["pending", "retrying"]).aggregate(at=Max("next_attempt_at"))["at"]
                clock.move_to(max(latest or timezone.now(), timezone.now()) + RETRY_SCHEDULE[1])
                queue.put([str(pk) for pk in outbox_due_requeue(limit=10_000)])
                queue.drain()
                steps += 1
            statuses = Counter(
                (partners_by_pk, status) for partners_by_pk, status in ours.values_list("partner__slug", "status")
            )
            early, late = _schedule_deviation(ours, RETRY_SCHEDULE, RETRY_JITTER, slack=10 + client_timeout)
            attempts = {
                name: list(
                    Counter(
                        DeliveryAttempt.objects.filter(event__partner=partners[name]).values_list("event_id", flat=True)
                    ).values()
                )
                for name in FAULTY
            }
            gone = Partner.objects.get(pk=partners["gone"].pk)
            details: dict[str, Any] = {
                "statuses": {f"{slug.removeprefix(tag + '-')}:{status}": n for (slug, status), n in statuses.items()},
                "attempts_per_event": {name: sorted(set(n)) for name, n in attempts.items()},
                "received": {r.name: len(r.deliveries) for r in receivers},
                "gone_disabled": gone.webhook_disabled_at is not None,
                "retries_early": early,
                "retries_late": late,
                "schedule_steps": steps,
                "healthy_max_wait_s": round(max(healthy_waits, default=0.0), 2),
                "healthy_delivered_while_slow_in_flight": healthy_during_slow,
            }
            faults = sum(1 for name in FAULTY if name not in {"healthy", "slow"} for _d in by_name[name].deliveries)

            # The partners recover; staff re-enable the webhook that answered 410 and re-drive.
            for receiver in receivers:
                receiver.behave = ("ok", 0)
            staff = Actor.system("fault suite staff")
            partner_webhook_enable(partner=gone, actor=staff)
            recovered = time.monotonic()
            for event in ours.filter(status__in=["dead", "no_endpoint"]):
                outbox_event_redrive(event=event, actor=staff)
            queue.drain()
            queue.settle()
            recovery = time.monotonic() - recovered
        lost = ours.exclude(status="delivered").count()
        for name, partner in partners.items():
            expected = set(map(str, ours.filter(partner=partner).values_list("pk", flat=True)))
            lost += len(expected - set(by_name[name].applied))
        details["final_statuses"] = dict(Counter(ours.values_list("status", flat=True)))
        dupes = sum(duplicates_applied(r) for r in receivers)
    return Outcome(
        "partner_faults",
        load=ours.count(),
        faults=faults,
        lost=lost,
        duplicates_applied=dupes,
        recovery_s=recovery,
        details=details,
    )


def _schedule_deviation(events: Any, schedule: tuple[Any, ...], jitter: float, *, slack: float) -> tuple[int, int]:
    """Retries sent before their scheduled delay (with jitter) ran out, and retries sent much later than it."""
    from consents.models import DeliveryAttempt

    early = late = 0
    by_event: dict[Any, list[Any]] = {}
    for event_id, at, ms in (
        DeliveryAttempt.objects.filter(event__in=events)
        .order_by("attempted_at")
        .values_list("event_id", "attempted_at", "duration_ms")
    ):
        by_event.setdefault(event_id, []).append((at, ms))
    for attempts in by_event.values():
        for n, ((previous, ms), (at, _ms)) in enumerate(itertools.pairwise(attempts), start=1):
            gap = (at - previous).total_seconds() - ms / 1000
            planned = schedule[n].total_seconds()
            early += gap < planned * (1 - jitter) - 0.5
            late += gap > planned * (1 + jitter) + slack
    return early, late


# 7. No stale grants ------------------------------------------------------------------------------


def no_stale_grants(*, consumers: int, rate: float, duration_s: float, checkers: int = 2) -> Outcome:
    """Consent checks through the partner API (in-process HTTP stack) while consumers withdraw, in other threads.

    ``checkers`` threads ask ``GET /api/v1/subjects/{id}/consents/{purpose}`` at ``rate`` checks per
    second in all (0: as fast as they can) for ``duration_s``; one thread withdraws the consumers
    one by one over the same time, noting each withdrawal's commit time (taken in an after-commit
    callback, so just after the commit). Lost: a check that started after a withdrawal committed
    and still answered granted. Recovery: the longest time from a commit to the end of a check that
    still answered granted (checks already in flight at the commit may).
    """
    from django.db import transaction
    from django.test import Client, override_settings

    from audit.services import Actor
    from consents.services.consents import consent_grant, consent_revoke
    from consents.services.partners import partner_subject_ensure

    tag = _tag()
    purpose = _purpose(tag, "offers")
    partner = _partner(tag, "checker", purposes=(purpose,))
    users = _consumers(tag, consumers)
    subjects = {}
    for user in users:
        consent_grant(user=user, purpose=purpose, actor=Actor.consumer(user))
        subjects[user.pk] = partner_subject_ensure(partner=partner, user=user).subject_id
    token = _api_token(partner, ("consents:read",))
    committed: dict[int, float] = {}
    checks: list[tuple[int, float, float, bool]] = []  # user, started, ended, granted
    errors: list[str] = []
    lock = threading.Lock()
    stop = time.monotonic() + duration_s

    def withdraw() -> None:
        order = list(users)
        random.Random(7).shuffle(order)
        pause = duration_s / (len(order) + 1)
        for user in order:
            time.sleep(pause)
            with _serial(), transaction.atomic():
                transaction.on_commit(lambda user=user: committed.__setitem__(user.pk, time.monotonic()))
                consent_revoke(user=user, purpose=purpose, actor=Actor.consumer(user))

    def check(worker: int) -> None:
        client = Client(headers={"authorization": f"Bearer {token}"})
        rng = random.Random(worker)
        interval = checkers / rate if rate else 0.0
        following = time.monotonic()
        while time.monotonic() < stop:
            user = rng.choice(users)
            started = time.monotonic()
            with _serial():
                response = client.get(f"/api/v1/subjects/{subjects[user.pk]}/consents/{purpose.slug}")
            ended = time.monotonic()
            if response.status_code != 200:
                with lock:
                    errors.append(f"{response.status_code}: {response.content[:200]!r}")
                continue
            with lock:
                checks.append((user.pk, started, ended, response.json()["granted"]))
            following += interval
            time.sleep(max(0.0, following - time.monotonic()))

    with override_settings(PARTNER_API_RATE="1000000/minute"):
        _threads(lambda i: check(i) if i < checkers else withdraw(), checkers + 1)
    stale = [c for c in checks if c[0] in committed and c[1] > committed[c[0]] and c[3]]
    straddling = [c[2] - committed[c[0]] for c in checks if c[0] in committed and c[3] and c[2] > committed[c[0]]]
    after = sum(1 for c in checks if c[0] in committed and c[1] > committed[c[0]])
    details = {
        "checks": len(checks),
        "checks_after_a_withdrawal": after,
        "withdrawals": len(committed),
        "stale": len(stale),
        "errors": errors[:5],
        "error_count": len(errors),
        "rate_per_s": round(len(checks) / duration_s, 1),
    }
    return Outcome(
        "no_stale_grants",
        load=len(checks),
        faults=len(committed),
        lost=len(stale) + len(errors),
        duplicates_applied=0,
        recovery_s=max(straddling, default=0.0),
        details=details,
    )


# 8. Duplicate submits ----------------------------------------------------------------------------


def _at_once(calls: list[Callable[[], Any]]) -> list[Any]:
    """Run the calls on their own threads, released together; their results in order."""
    barrier = threading.Barrier(len(calls))
    results: list[Any] = [None] * len(calls)

    def run(i: int) -> None:
        barrier.wait(10)
        results[i] = calls[i]()

    _threads(run, len(calls))
    return results


def duplicate_submits(*, rounds: int) -> Outcome:
    """The same request twice: one after the other, and two at once on separate connections.

    Per round: a consumer double-clicks withdraw (two POSTs, same session, one after the other);
    another consumer withdraws in two tabs at once (same session, two threads); a partner sends the
    same acknowledgement twice, one after the other and at once; a partner sends the same access
    batch twice, one after the other and at once. Lost: a withdrawal, acknowledgement or access
    that was not recorded. Duplicates: any second change, receipt, outbox event per partner, audit
    event or access event (or access counted twice in the daily rollup).
    """
    from django.db.models import Sum
    from django.test import Client, override_settings
    from django.utils import timezone

    from audit.models import AccessDaily, AccessEvent, AuditEvent
    from audit.services import Actor
    from consents.models import Consent, ConsentReceipt, OutboxEvent
    from consents.services.consents import consent_grant
    from consents.services.partners import partner_subject_ensure

    tag = _tag()
    purpose = _purpose(tag, "offers")
    partners = [_partner(tag, f"p{n}", purposes=(purpose,)) for n in range(2)]
    tokens = [_api_token(p, ("acks:write", "access:write")) for p in partners]
    expected: Counter[str] = Counter()
    actual: Counter[str] = Counter()
    submits = 0

    def consumer_client(user: Any) -> Client:
        client = Client()
        client.force_login(user)
        return client

    def withdraw(client: Client) -> int:
        with _serial():
            return client.post(f"/consents/{purpose.slug}/withdraw/", {"note": ""}).status_code

    def api(index: int, method: str, path: str, body: dict[str, Any]) -> int:
        client = Client(headers={"authorization": f"Bearer {tokens[index]}"})
        with _serial():
            return getattr(client, method)(path, body, content_type="application/json").status_code

    statuses: Counter[int] = Counter()
    with override_settings(PARTNER_API_RATE="1000000/minute"):
        for r in range(rounds):
            double, tabs = _consumers(f"{tag}-{r}", 2)
            for user in (double, tabs):
                consent_grant(user=user, purpose=purpose, actor=Actor.consumer(user))
            # Double click: the second POST arrives after the first was answered.
            client = consumer_client(double)
            statuses.update([withdraw(client), withdraw(client)])
            # Two tabs: the same session, both POSTs at once.
            first = consumer_client(tabs)
            second = Client()
            second.cookies = first.cookies
            statuses.update(_at_once([lambda c=first: withdraw(c), lambda c=second: withdraw(c)]))
            submits += 4
            for user in (double, tabs):
                consent = Consent.objects.get(user=user, purpose=purpose)
                expected.update({"withdrawal": 1, "receipt": 1, "audit": 1, "outbox": len(partners)})
                actual["withdrawal"] += consent.history.filter(status="revoked").count()
                actual["receipt"] += ConsentReceipt.objects.filter(consent=consent, event="revoked").count()
                actual["audit"] += AuditEvent.objects.filter(subject=user, action="consent.revoked").count()
                actual["outbox"] += OutboxEvent.objects.filter(consent=consent, event_type="consent.revoked").count()

            # Acknowledgements: each partner acks its event for each consumer, twice in a row or twice at once.
            for index, partner in enumerate(partners):
                for user, together in ((double, False), (tabs, True)):
                    event = OutboxEvent.objects.get(partner=partner, consent__user=user, event_type="consent.revoked")
                    send = partial(api, index, "post", f"/api/v1/events/{event.pk}/ack", {"status": "processed"})
                    statuses.update(_at_once([send, send]) if together else [send(), send()])
                    submits += 2
                    expected["ack"] += 1
                    actual["ack"] += AuditEvent.objects.filter(
                        action="partner.event_acknowledged", data__event_id=str(event.pk)
                    ).count()

            # Access batches: the same ids twice in a row, and the same ids twice at once.
            for together in (False, True):
                partner, index = partners[int(together)], int(together)
                subject = partner_subject_ensure(partner=partner, user=double).subject_id
                at = timezone.now().isoformat()
                batch = {
                    "events": [
                        {
                            "event_id": f"{tag}-{r}-{together}-{n}",
                            "subject_id": subject,
                            "purpose": purpose.slug,
                            "categories": [f"{tag}-offers-data"],
                            "accessed_at": at,
                            "action": "read",
                        }
                        for n in range(5)
                    ]
                }
                send = partial(api, index, "post", "/api/v1/access-events", batch)
                statuses.update(_at_once([send, send]) if together else [send(), send()])
                submits += 2
                ids = [item["event_id"] for item in batch["events"]]
                expected["access"] += len(ids)
                actual["access"] += AccessEvent.objects.filter(partner=partner, partner_event_id__in=ids).count()
        rollup = AccessDaily.objects.filter(purpose=purpose).aggregate(total=Sum("events"))["total"] or 0
        expected["access_rollup"] = expected["access"]
        actual["access_rollup"] = rollup
    failures = sum(n for status, n in statuses.items() if status >= 500)
    return Outcome(
        "duplicate_submits",
        load=submits,
        faults=submits // 2,
        lost=sum((expected - actual).values()) + failures,
        duplicates_applied=sum((actual - expected).values()),
        recovery_s=0.0,
        details={"expected": dict(expected), "actual": dict(actual), "statuses": dict(statuses)},
    )


# Running them -------------------------------------------------------------------------------------


VERBOSE = False


def _run(build: Callable[[], Outcome]) -> dict[str, Any]:
    outcome = build()
    print(outcome.line(), flush=True)
    if VERBOSE:
        print("  " + json.dumps(outcome.details, sort_keys=True, default=str), flush=True)
    return outcome.as_dict()


SCENARIOS: dict[str, Callable[[bool], dict[str, Any]]] = {
    "rollback_atomicity": lambda quick: _run(lambda: rollback_atomicity(changes=300 if quick else 10_000)),
    "partner_faults": lambda quick: _run(
        lambda: (
            partner_faults(withdrawals=3, client_timeout=0.5, slow_s=0.3)
            if quick
            else partner_faults(withdrawals=5, client_timeout=10.0, slow_s=5.0)
        ),
    ),
    "no_stale_grants": lambda quick: _run(
        lambda: (
            no_stale_grants(consumers=60, rate=0, duration_s=3)
            if quick
            else no_stale_grants(consumers=200, rate=50, duration_s=20)
        ),
    ),
    "duplicate_submits": lambda quick: _run(lambda: duplicate_submits(rounds=2 if quick else 20)),
}


def django_setup() -> None:
    """Configure Django for a standalone run: a throwaway SQLite database unless DATABASE_URL is set; migrated."""
    sys.path.insert(0, str(ROOT))
    os.environ.setdefault("PORTAL_VAR_DIR", tempfile.mkdtemp(prefix="bench-faults-"))
    os.environ.setdefault("PORTAL_ENV", "development")
    os.environ.setdefault("DEBUG", "0")
    os.environ.setdefault("LOG_LEVEL", "ERROR")
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "portal.settings")
    import django

    django.setup()
    from django.core.management import call_command

    call_command("migrate", verbosity=0)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="the reduced sizes the test suite uses")
    parser.add_argument("--only", default=",".join(SCENARIOS), help="comma-separated scenario names")
    parser.add_argument("--verbose", action="store_true", help="also print each scenario's details")
    args = parser.parse_args()
    global VERBOSE
    VERBOSE = args.verbose
    django_setup()
    results = [SCENARIOS[name](args.quick) for name in args.only.split(",")]
    sys.exit(1 if any(r["lost"] or r["duplicates_applied"] for r in results) else 0)


if __name__ == "__main__":
    main()
