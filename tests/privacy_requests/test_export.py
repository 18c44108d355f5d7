import csv
import hashlib
import hmac
import io
import tracemalloc
from datetime import timedelta

import pytest
import time_machine
from django.conf import settings
from django.core import mail
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

from audit.actions import AuditAction
from audit.models import AuditEvent
from audit.services import Actor, chain_key, event_record
from audit.signing import document_verify
from consents.errors import DomainError
from consents.models import Consent, ConsentReceipt
from privacy_requests.models import PrivacyRequest, RequestStatus
from privacy_requests.services.export import export_build
from privacy_requests.services.export_sections import SECTIONS
from privacy_requests.services.requests import (
    privacy_request_export_create,
    privacy_request_reject,
)
from privacy_requests.storage import export_storage
from privacy_requests.tasks import privacy_exports_purge_expired
from tests.factories import StaffFactory, UserFactory
from tests.privacy_requests.helpers import consumer_data_seed, export_archive, export_json

pytestmark = pytest.mark.usefixtures("media_root")


def _audit_rows_seed(user, count: int) -> None:
    """``count`` audit events for the consumer, written in bulk (a valid chain is not needed to export)."""
    now = timezone.now()
    key = chain_key(user)
    events = [
        AuditEvent(
            chain=key,
            seq=10_000 + i,
            occurred_at=now,
            actor_kind="partner",
            actor_label="Bulk partner",
            subject=user,
            action="access.recorded",
            data={"purpose": "research", "n": i},
            prev_hash="0" * 64,
            hash=hmac.new(b"k", str(i).encode(), hashlib.sha256).hexdigest(),
        )
        for i in range(count)
    ]
    AuditEvent.objects.bulk_create(events, batch_size=2000)


def _built(user) -> PrivacyRequest:
    request = privacy_request_export_create(user=user, language="en")
    export_build(request_id=request.pk)
    request.refresh_from_db()
    return request


def test_export_has_json_csv_and_readme_for_every_section(consumer):
    consumer_data_seed(consumer)
    archive = export_archive(_built(consumer))
    expected = {f"{s.name}.{ext}" for s in SECTIONS for ext in ("json", "csv")} | {"README.txt"}
    assert set(archive.namelist()) == expected
    readme = archive.read("README.txt").decode()
    for section in SECTIONS:
        assert f"{section.name}.json, {section.name}.csv" in readme
        assert str(section.description) in readme


def test_export_json_holds_the_consumers_data(consumer, other_consumer):
    consumer.first_name, consumer.last_name = "Ada", "Lovelace"
    consumer.save()
    data = consumer_data_seed(consumer, note="Too many emails")
    consumer_data_seed(other_consumer, note="Other person's note")
    request = _built(consumer)
    archive = export_archive(request)

    profile = export_json(archive, "profile")
    assert profile["section"] == "profile"
    assert profile["items"] == [
        {
            "email": consumer.email,
            "first_name": "Ada",
            "last_name": "Lovelace",
            "privacy_law": "gdpr",
            "date_joined": consumer.date_joined.isoformat(),
            "last_login": None,
        }
    ]
    assert export_json(archive, "email_addresses")["items"] == [
        {"email": consumer.email, "verified": True, "primary": True}
    ]

    consents = {c["purpose"]: c for c in export_json(archive, "consents")["items"]}
    assert set(consents) == {p.slug for p in data.purposes}
    assert all(c["status"] == "granted" and c["notice_version"] == 1 for c in consents.values())

    history = export_json(archive, "consent_history")["items"]
    assert len(history) == Consent.history.filter(user_id=consumer.pk).count() == 4
    assert [h["status"] for h in history if h["purpose"] == data.purposes[0].slug] == ["granted", "revoked", "granted"]
    assert any(h["revocation_note"] == "Too many emails" for h in history)
    assert {h["change"] for h in history} == {"created", "changed"}

    receipts = export_json(archive, "receipts")["items"]
    assert len(receipts) == ConsentReceipt.objects.filter(user=consumer).count() == 4
    for receipt in receipts:
        assert hashlib.sha256(receipt["jws"].encode()).hexdigest() == receipt["sha256"]
        assert document_verify(receipt["jws"])["consentReceiptID"] == receipt["receipt_id"]

    partners = export_json(archive, "partners")["items"]
    assert sorted(p["partner"] for p in partners) == sorted(p.name for p in data.partners)

    requests = export_json(archive, "requests")["items"]
    assert [(r["request_id"], r["kind"]) for r in requests] == [(str(request.pk), "export")]

    activity = export_json(archive, "activity")["items"]
    actions = [a["action"] for a in activity]
    assert actions.count("consent.granted") == 3
    assert "privacy_request.received" in actions
    assert all(set(a) == set(SECTIONS[-1].columns) for a in activity)
    granted_labels = {a["action_label"] for a in activity if a["action"] == "consent.granted"}
    assert granted_labels == {str(AuditAction.CONSENT_GRANTED.label)}

    everything = b"".join(archive.read(name) for name in archive.namelist())
    assert other_consumer.email.encode() not in everything
    assert b"Other person's note" not in everything


def test_export_csv_parses_with_the_same_rows_and_columns_as_the_json(consumer):
    consumer_data_seed(consumer, note="=HYPERLINK('http://evil.example')")
    archive = export_archive(_built(consumer))
    for section in SECTIONS:
        rows = list(csv.DictReader(io.StringIO(archive.read(f"{section.name}.csv").decode("utf-8-sig"))))
        items = export_json(archive, section.name)["items"]
        assert len(rows) == len(items), section.name
        if rows:
            assert tuple(rows[0]) == section.columns
    history = list(csv.DictReader(io.StringIO(archive.read("consent_history.csv").decode("utf-8-sig"))))
    notes = {row["revocation_note"] for row in history} - {""}
    # A spreadsheet must not run the consumer's note as a formula; the JSON keeps it as written.
    assert notes == {"'=HYPERLINK('http://evil.example')"}
    assert "=HYPERLINK('http://evil.example')" in {
        h["revocation_note"] for h in export_json(archive, "consent_history")["items"]
    }


def test_export_memory_stays_flat_as_the_data_grows(consumer):
    def peak_for(rows: int) -> int:
        AuditEvent.objects.filter(subject=consumer).delete()
        _audit_rows_seed(consumer, rows)
        request = privacy_request_export_create(user=consumer, language="en")
        tracemalloc.start()
        export_build(request_id=request.pk)
        peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
        return peak

    peak_for(100)  # warm-up: the first run also imports modules and fills caches
    small, large = peak_for(6_000), peak_for(24_000)
    # Four times the rows, the same peak: rows are streamed a chunk at a time, never held together.
    assert large < small * 1.2, (small, large)


def test_export_reports_progress_while_it_runs(consumer):
    _audit_rows_seed(consumer, 12_000)
    request = privacy_request_export_create(user=consumer, language="en")
    with CaptureQueriesContext(connection) as queries:
        export_build(request_id=request.pk)
    progress_updates = [q["sql"] for q in queries if q["sql"].startswith("UPDATE") and '"progress"' in q["sql"]]
    assert len(progress_updates) >= 3
    request.refresh_from_db()
    assert request.status == RequestStatus.COMPLETED
    assert request.progress == 100


def test_second_export_is_refused_while_one_is_under_way(consumer):
    first = privacy_request_export_create(user=consumer, language="en")
    with pytest.raises(DomainError) as error:
        privacy_request_export_create(user=consumer, language="en")
    assert error.value.code == "export_active"
    assert list(PrivacyRequest.objects.filter(user=consumer)) == [first]
    export_build(request_id=first.pk)
    assert privacy_request_export_create(user=consumer, language="en").pk != first.pk


def test_export_ready_email_links_to_the_request_page(consumer, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        request = privacy_request_export_create(user=consumer, language="en")
    with django_capture_on_commit_callbacks(execute=True):
        export_build(request_id=request.pk)
    received, ready = mail.outbox[-2:]
    assert received.subject == "We received your request: Copy of your data"
    assert ready.subject == "Your copy of your data is ready"
    assert ready.to == [consumer.email]
    assert settings.SITE_URL + reverse("requests:detail", args=[request.pk]) in ready.body
    assert reverse("requests:download", args=[request.pk]) not in ready.body, "the file is only behind the login"


def test_emails_use_the_language_of_the_request(consumer, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        privacy_request_export_create(user=consumer, language="zh-hans")
    # Dates are formatted for the consumer's language (Chinese: 2027年1月31日).
    assert "年" in mail.outbox[-1].body


def test_rejected_export_keeps_no_file(consumer, media_root):
    request = privacy_request_export_create(user=consumer, language="en")
    privacy_request_reject(request=request, reason="Duplicate request", staff=StaffFactory())
    assert export_build(request_id=request.pk) is None
    request.refresh_from_db()
    assert request.status == RequestStatus.REJECTED
    assert not request.result_file
    assert not list(media_root.rglob("*.zip"))


def test_owner_downloads_the_file_and_each_download_is_logged(reauthenticated_client, consumer):
    request = _built(consumer)
    response = reauthenticated_client.get(reverse("requests:download", args=[request.pk]))
    assert response.status_code == 200
    assert response.streaming
    assert response["Content-Disposition"].startswith('attachment; filename="privacy-export-')
    assert response["Cache-Control"] == "private, no-store"
    body = b"".join(response.streaming_content)
    with export_storage().open(request.result_file.name, "rb") as handle:
        assert body == handle.read()
    reauthenticated_client.get(reverse("requests:download", args=[request.pk]))
    request.refresh_from_db()
    assert request.download_count == 2
    assert AuditEvent.objects.filter(subject=consumer, action="privacy_request.downloaded").count() == 2


def test_a_stale_session_must_enter_the_password_again_to_download_the_export(consumer_client, consumer):
    from tests.factories import PASSWORD

    request = _built(consumer)
    url = reverse("requests:download", args=[request.pk])
    response = consumer_client.get(url)
    assert response.status_code == 302
    assert response.url.startswith(reverse("account_reauthenticate"))
    request.refresh_from_db()
    assert request.download_count == 0
    assert not AuditEvent.objects.filter(subject=consumer, action="privacy_request.downloaded").exists()
    # After the password, allauth sends the consumer straight back to the file.
    back = consumer_client.post(response.url, {"password": PASSWORD})
    assert back.status_code == 302
    assert back.url == url
    assert consumer_client.get(url).status_code == 200


def test_download_after_expiry_explains_and_the_beat_task_deletes_the_file(
    consumer_client, consumer, django_capture_on_commit_callbacks
):
    request = _built(consumer)
    name = request.result_file.name
    with time_machine.travel(timezone.now() + timedelta(days=settings.EXPORT_TTL_DAYS, minutes=1)):
        response = consumer_client.get(reverse("requests:download", args=[request.pk]))
        assert response.status_code == 410
        assert "has expired" in response.content.decode()
        with django_capture_on_commit_callbacks(execute=True):
            assert privacy_exports_purge_expired() == 1
        assert privacy_exports_purge_expired() == 0
    request.refresh_from_db()
    assert not request.result_file
    assert request.file_deleted_at is not None
    assert not export_storage().exists(name)
    assert AuditEvent.objects.filter(subject=consumer, action="privacy_request.file_deleted").exists()
    page = consumer_client.get(reverse("requests:detail", args=[request.pk])).content.decode()
    assert "This file has expired" in page


def test_beat_schedule_registers_the_privacy_request_tasks():
    from portal.celery import app

    tasks = {entry["task"] for entry in app.conf.beat_schedule.values()}
    assert {
        "portal.requests.tasks.privacy_requests_tick",
        "portal.requests.tasks.privacy_exports_purge_expired",
        "portal.requests.tasks.consent_proofs_purge_expired",
    } <= tasks


def test_request_page_polls_while_the_export_runs_and_stops_when_done(consumer_client, consumer):
    request = privacy_request_export_create(user=consumer, language="en")
    PrivacyRequest.objects.filter(pk=request.pk).update(status=RequestStatus.PROCESSING, progress=42)
    status_url = reverse("requests:status", args=[request.pk])
    page = consumer_client.get(reverse("requests:detail", args=[request.pk])).content.decode()
    assert f'hx-get="{status_url}?seen=processing-42"' in page
    assert 'hx-trigger="every 2s"' in page
    assert 'aria-live="polite"' in page
    fragment = consumer_client.get(status_url).content.decode()
    assert 'value="42"' in fragment
    assert "<html" not in fragment

    export_build(request_id=request.pk)
    fragment = consumer_client.get(status_url).content.decode()
    assert "hx-trigger" not in fragment
    assert reverse("requests:download", args=[request.pk]) in fragment


def test_export_requires_recent_reauthentication(consumer_client, consumer):
    response = consumer_client.post(reverse("requests:export"))
    assert response.status_code == 302
    assert response.url.startswith(reverse("account_reauthenticate"))
    assert not PrivacyRequest.objects.filter(user=consumer).exists()


def test_reauthentication_resumes_the_export_request(consumer_client, consumer):
    from tests.factories import PASSWORD

    reauth_url = consumer_client.post(reverse("requests:export")).url
    response = consumer_client.post(reauth_url, {"password": PASSWORD})
    request = PrivacyRequest.objects.get(user=consumer)
    assert response.status_code == 302
    assert response.url == request.get_absolute_url()


def test_export_request_through_the_page_is_refused_with_an_explanation_while_one_runs(
    reauthenticated_client, consumer
):
    reauthenticated_client.post(reverse("requests:export"))
    response = reauthenticated_client.post(reverse("requests:export"), follow=True)
    assert "A copy of your data is already being prepared" in response.content.decode()
    assert PrivacyRequest.objects.filter(user=consumer).count() == 1
    page = reauthenticated_client.get(reverse("requests:list")).content.decode()
    assert "See its progress" in page
    assert 'action="/requests/export/"' not in page


def test_other_consumer_gets_404_for_the_request_its_status_and_its_file(client, consumer):
    request = _built(consumer)
    intruder = UserFactory(email="intruder@example.com")
    client.force_login(intruder)
    for name in ("requests:detail", "requests:status", "requests:download"):
        assert client.get(reverse(name, args=[request.pk])).status_code == 404, name
    assert client.post(reverse("requests:cancel", args=[request.pk])).status_code == 404
    request.refresh_from_db()
    assert request.download_count == 0


def test_anonymous_visitors_are_sent_to_log_in(client, consumer):
    request = _built(consumer)
    for url in (
        reverse("requests:list"),
        reverse("requests:detail", args=[request.pk]),
        reverse("requests:download", args=[request.pk]),
    ):
        response = client.get(url)
        assert response.status_code == 302
        assert response.url.startswith(reverse("account_login"))


def test_export_task_is_idempotent(consumer):
    request = _built(consumer)
    name = request.result_file.name
    assert export_build(request_id=request.pk) is None
    request.refresh_from_db()
    assert request.result_file.name == name


def test_consumer_actor_is_recorded_for_the_request(consumer):
    request = privacy_request_export_create(user=consumer, language="en")
    event = AuditEvent.objects.get(subject=consumer, action="privacy_request.received")
    assert (event.actor_kind, event.actor_id) == (Actor.consumer(consumer).kind, str(consumer.pk))
    assert event.target_id == str(request.pk)


def test_export_activity_carries_the_note_kept_beside_each_sealed_event(consumer):
    event_record(
        actor=Actor.system("tests"), subject=consumer, action="partner.event_acknowledged", note="Removed from CRM"
    )
    activity = export_json(export_archive(_built(consumer)), "activity")["items"]
    [ack] = [a for a in activity if a["action"] == "partner.event_acknowledged"]
    assert ack["note"] == "Removed from CRM"
    assert {a["note"] for a in activity if a is not ack} == {""}
