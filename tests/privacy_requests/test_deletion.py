import hashlib
import io
import re
import zipfile
from datetime import timedelta

import pytest
import time_machine
from allauth.account.models import EmailAddress
from allauth.mfa.models import Authenticator
from allauth.mfa.totp.internal.auth import TOTP, generate_totp_secret
from django.conf import settings
from django.contrib.admin.helpers import ACTION_CHECKBOX_NAME
from django.contrib.admin.models import CHANGE, LogEntry
from django.contrib.contenttypes.models import ContentType
from django.contrib.sessions.backends.db import SessionStore
from django.core import mail
from django.core.management import call_command
from django.db import connection
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from audit.models import AuditEvent
from audit.selectors import audit_chain_breaks
from audit.services import Actor
from audit.signing import document_verify
from consents.errors import DomainError
from consents.models import Consent, ConsentReceipt, ConsentStatus, EventType, OutboxEvent
from consents.models.outbox import AckStatus
from consents.receipts import principal_id
from consents.services.feed import outbox_event_ack
from consents.services.partners import partner_subject_ensure
from portal.models import User
from privacy_requests.models import (
    ConsentProof,
    PartnerTaskState,
    PrivacyRequest,
    PrivacyRequestPartnerTask,
    RequestStatus,
)
from privacy_requests.retention import privacy_request_retention_apply
from privacy_requests.services.deletion import (
    consent_proofs_purge,
    privacy_request_acks_sync,
    privacy_request_deletion_execute,
)
from privacy_requests.services.export import export_build
from privacy_requests.services.requests import (
    cancel_token_make,
    privacy_request_cancel,
    privacy_request_deletion_create,
    privacy_request_export_create,
)
from privacy_requests.tasks import consent_proofs_purge_expired, privacy_requests_tick
from tests.factories import PASSWORD, StaffFactory, UserFactory
from tests.privacy_requests.helpers import consumer_data_seed

pytestmark = pytest.mark.usefixtures("media_root")

TOKEN = "cnry7q3x"


def _after_grace():
    return time_machine.travel(timezone.now() + timedelta(days=settings.DELETION_GRACE_DAYS, minutes=1))


def _ack(task: PrivacyRequestPartnerTask, status: str = AckStatus.PROCESSED) -> None:
    """What the partner API does when a partner acknowledges its erasure event."""
    OutboxEvent.objects.filter(pk=task.event_id).update(
        acked_at=timezone.now(), ack_status=status, ack_detail="erased" if status == "processed" else "error"
    )


def _scheduled(user: User, capture) -> PrivacyRequest:
    with capture(execute=True):
        return privacy_request_deletion_create(user=user, language="en")


def _executed(request: PrivacyRequest, capture) -> PrivacyRequest:
    with _after_grace(), capture(execute=True):
        assert privacy_request_deletion_execute(request_id=request.pk) is not None
    request.refresh_from_db()
    return request


def _database_hits(token: str) -> dict[str, set[str]]:
    """Every table and column (all of them, from the database's own catalogue) whose value contains ``token``."""
    hits: dict[str, set[str]] = {}
    quote = connection.ops.quote_name
    with connection.cursor() as cursor:
        for table in connection.introspection.table_names(cursor):
            columns = [column.name for column in connection.introspection.get_table_description(cursor, table)]
            cursor.execute(f"SELECT {', '.join(quote(c) for c in columns)} FROM {quote(table)}")  # noqa: S608
            for row in cursor.fetchall():
                for column, value in zip(columns, row, strict=True):
                    text = bytes(value).decode(errors="ignore") if isinstance(value, bytes | memoryview) else str(value)
                    if token in text.lower():
                        hits.setdefault(table, set()).add(column)
    # Session data is encoded; look inside it too.
    for session in SessionStore.get_model_class().objects.all():
        if token in str(session.get_decoded()).lower():
            hits.setdefault("django_session (decoded)", set()).add("session_data")
    return hits


def _staff_browser(staff: User) -> Client:
    browser = Client()
    browser.force_login(staff)
    return browser


def _admin_extend(browser: Client, request: PrivacyRequest, reason: str) -> None:
    """The queue's "extend the deadline" action, as a staff member uses it."""
    response = browser.post(
        reverse("admin:privacy_requests_privacyrequest_changelist"),
        {
            "action": "extend",
            ACTION_CHECKBOX_NAME: [request.pk],
            "apply": "1",
            "months": 1,
            "days": 0,
            "reason": reason,
        },
    )
    assert response.status_code == 302, response.content


def _admin_record(browser: Client, task: PrivacyRequestPartnerTask, note: str) -> None:
    """The "record a confirmation received by other means" action."""
    response = browser.post(
        reverse("admin:privacy_requests_privacyrequestpartnertask_changelist"),
        {"action": "record_acknowledgement", ACTION_CHECKBOX_NAME: [task.pk], "apply": "1", "note": note},
    )
    assert response.status_code == 302, response.content


def _api_ack(client: Client, partner, event_id, status: str, detail: str) -> None:
    response = client.post(
        f"/api/v1/events/{event_id}/ack",
        {"status": status, "detail": detail},
        content_type="application/json",
        headers=partner.headers,
    )
    assert response.status_code == 200, response.content


def _audit_intact() -> None:
    out = io.StringIO()
    call_command("audit_verify", stdout=out)
    assert "audit log intact" in out.getvalue()


def test_deletion_canary_leaves_no_marker_in_any_table(
    db, client, media_root, django_capture_on_commit_callbacks, api_partner_factory, mfa_staff
):
    user = UserFactory(email=f"{TOKEN}@example.com", first_name=f"Ada{TOKEN}", last_name=f"Byron{TOKEN}")
    EmailAddress.objects.create(user=user, email=f"alt-{TOKEN}@example.org", verified=False, primary=False)
    data = consumer_data_seed(user, note=f"Stop it {TOKEN}")
    ads, lab = data.partners
    # A third partner that uses the API: it acknowledges its erasure event there, in its own words.
    api = api_partner_factory("canary-api")
    partner_subject_ensure(partner=api.partner, user=user)
    staff = _staff_browser(mfa_staff)
    LogEntry.objects.create(
        user=mfa_staff,
        content_type=ContentType.objects.get_for_model(User),
        object_id=str(user.pk),
        object_repr=str(user),
        action_flag=CHANGE,
        change_message="[]",
    )
    # A real login (allauth records the address in the session), then a second one left waiting for the
    # second factor (allauth keeps the pending login, address included).
    assert client.post(reverse("account_login"), {"login": user.email, "password": PASSWORD}).status_code == 302
    TOTP.activate(user, generate_totp_secret())
    half_signed_in = Client()
    response = half_signed_in.post(reverse("account_login"), {"login": user.email, "password": PASSWORD})
    assert response.url == reverse("mfa_authenticate")
    export = privacy_request_export_create(user=user, language="en")
    export_build(request_id=export.pk)
    export.refresh_from_db()
    export_file = media_root / export.result_file.name
    with zipfile.ZipFile(export_file) as archive:
        assert TOKEN in archive.read("profile.json").decode()

    request = _scheduled(user, django_capture_on_commit_callbacks)
    _admin_extend(staff, request, f"Waiting for {TOKEN}'s bank")
    # The search finds the markers where they live before the deletion runs.
    before = _database_hits(TOKEN)
    assert {
        "portal_user",
        "account_emailaddress",
        "consents_historicalconsent",
        "audit_accessevent",
        "django_admin_log",
        "portal_privacyrequest",
        "portal_privacyrequestextension",
        "portal_historicalprivacyrequestextension",
        "django_session (decoded)",
    } <= set(before), before

    request = _executed(request, django_capture_on_commit_callbacks)
    assert request.status == RequestStatus.WAITING_PARTNERS
    tasks = {t.partner: t for t in request.partner_tasks.all()}
    assert set(tasks) == {ads, lab, api.partner}
    # After the account is gone, more free text arrives: a second extension, the API partner's
    # acknowledgements (a failure, then success), and a confirmation staff record by hand.
    _admin_extend(staff, request, f"Still waiting for {TOKEN}'s bank")
    _api_ack(client, api, tasks[api.partner].event_id, "failed", f"No customer called {TOKEN}")
    _api_ack(client, api, tasks[api.partner].event_id, "processed", f"Erased {TOKEN} after all")
    with django_capture_on_commit_callbacks(execute=True):
        privacy_requests_tick()
    _admin_record(staff, tasks[ads], f"Letter from Ads Co about {TOKEN}")
    request.refresh_from_db()
    assert request.status == RequestStatus.WAITING_PARTNERS, "the lab never confirms"
    planted = _database_hits(TOKEN)
    assert {
        "audit_auditnote",
        "consents_outboxevent",
        "portal_privacyrequestpartnertask",
        "portal_historicalprivacyrequestpartnertask",
        "portal_privacyrequestextension",
        "portal_historicalprivacyrequestextension",
        "portal_privacyrequest",
    } <= set(planted), planted
    assert set(planted) - {"portal_privacyrequest"} <= {
        "audit_auditnote",
        "consents_outboxevent",
        "portal_privacyrequestpartnertask",
        "portal_historicalprivacyrequestpartnertask",
        "portal_privacyrequestextension",
        "portal_historicalprivacyrequestextension",
    }, "the scrub at deletion removed everything else"
    _audit_intact()

    retention_over = request.created_at + timedelta(days=settings.PRIVACY_REQUEST_CONTACT_RETENTION_DAYS, minutes=1)
    with time_machine.travel(retention_over):
        with django_capture_on_commit_callbacks(execute=True):
            privacy_requests_tick()
        request.refresh_from_db()
        assert request.status == RequestStatus.WAITING_PARTNERS
        assert request.contact_email == ""
        assert _database_hits(TOKEN) == {}
        _audit_intact()

        # The lab confirms at last, in words that name the person: gone again when the request closes.
        mail.outbox.clear()
        _ack(tasks[lab])
        OutboxEvent.objects.filter(pk=tasks[lab].event_id).update(ack_detail=f"Erased {TOKEN}")
        with django_capture_on_commit_callbacks(execute=True):
            privacy_requests_tick()
    request.refresh_from_db()
    assert request.status == RequestStatus.COMPLETED
    assert _database_hits(TOKEN) == {}
    _audit_intact()
    assert not [m for m in mail.outbox if f"{TOKEN}@example.com" in m.to], "the address was forgotten"

    assert not export_file.exists()
    assert not [p for p in media_root.rglob("*") if p.is_file()], "no export file is left in storage"
    assert not Authenticator.objects.filter(user=user).exists()
    assert not EmailAddress.objects.filter(user=user).exists()
    assert client.get("/").context["user"].is_anonymous, "the consumer's sessions end"
    user.refresh_from_db()
    assert (user.is_active, user.has_usable_password(), user.first_name, user.last_name) == (False, False, "", "")
    assert user.email.endswith("@deleted.invalid")
    # The partners still recognise the pairwise ids the erasure requests named.
    assert {t.partner for t in request.partner_tasks.all()} == {ads, lab, api.partner}
    # The sealed rows kept what happened, without the words.
    acks = AuditEvent.objects.filter(subject=user, action="partner.event_acknowledged").select_related("note")
    assert sorted(e.data["status"] for e in acks) == ["failed", "processed"]
    assert {(e.note.text, e.note.scrubbed_at is not None) for e in acks} == {("", True)}


def test_deletion_revokes_every_consent_and_keeps_a_verifiable_pseudonymous_proof(
    consumer, django_capture_on_commit_callbacks
):
    data = consumer_data_seed(consumer)
    receipts_before = ConsentReceipt.objects.filter(user=consumer).count()
    request = _executed(_scheduled(consumer, django_capture_on_commit_callbacks), django_capture_on_commit_callbacks)

    revocations = AuditEvent.objects.filter(subject=consumer, action="consent.revoked", data__reason="account_deleted")
    assert sorted(e.data["purpose"] for e in revocations) == sorted(p.slug for p in data.purposes)
    assert not Consent.objects.filter(user=consumer).exists()
    assert not ConsentReceipt.objects.filter(user=consumer).exists()

    proofs = list(ConsentProof.objects.order_by("issued_at"))
    assert len(proofs) == receipts_before + len(data.purposes)
    pseudonym = principal_id(consumer.pk)
    for proof in proofs:
        assert proof.principal_id == pseudonym
        assert hashlib.sha256(proof.jws.encode()).hexdigest() == proof.receipt_sha256
        payload = document_verify(proof.jws)
        assert payload["piiPrincipalId"] == pseudonym
        assert payload["consentReceiptID"] == str(proof.receipt_id)
        assert proof.retain_until == proof.kept_since + timedelta(days=settings.CONSENT_PROOF_RETENTION_DAYS)
    final = [document_verify(p.jws) for p in proofs if p.event == "revoked"][-len(data.purposes) :]
    assert {p["withdrawal"]["reason"] for p in final} == {"account_deleted"}
    assert request.status == RequestStatus.WAITING_PARTNERS


def test_erasure_reaches_every_partner_that_received_the_consumer(consumer, django_capture_on_commit_callbacks):
    data = consumer_data_seed(consumer)
    request = _executed(_scheduled(consumer, django_capture_on_commit_callbacks), django_capture_on_commit_callbacks)
    events = OutboxEvent.objects.filter(event_type=EventType.SUBJECT_ERASURE_REQUESTED)
    assert {e.partner for e in events} == set(data.partners)
    by_partner = {e.partner.slug: e for e in events}
    assert by_partner[data.partners[0].slug].status == "pending", "partner with a webhook"
    assert by_partner[data.partners[1].slug].status == "no_endpoint", "feed-only partner"
    for event in events:
        assert event.payload["type"] == "subject.erasure_requested"
        assert event.payload["id"] == str(event.id)
        assert event.payload["data"] == {
            "subject_id": event.subject.subject_id,
            "request_id": str(request.pk),
            "due_at": request.due_at.isoformat().replace("+00:00", "Z"),
        }
    tasks = request.partner_tasks.all()
    assert {(t.partner, t.event) for t in tasks} == {(e.partner, e) for e in events}
    assert {t.state for t in tasks} == {PartnerTaskState.PENDING}


def test_partner_acknowledgements_close_the_request(consumer, django_capture_on_commit_callbacks):
    consumer_data_seed(consumer)
    address = consumer.email
    request = _executed(_scheduled(consumer, django_capture_on_commit_callbacks), django_capture_on_commit_callbacks)
    first, second = request.partner_tasks.order_by("partner__name")

    _ack(first)
    privacy_request_acks_sync(request_id=request.pk)
    request.refresh_from_db()
    assert request.status == RequestStatus.WAITING_PARTNERS
    first.refresh_from_db()
    assert first.state == PartnerTaskState.ACKNOWLEDGED
    assert first.acked_at is not None

    _ack(second)
    with django_capture_on_commit_callbacks(execute=True):
        privacy_request_acks_sync(request_id=request.pk)
    request.refresh_from_db()
    assert request.status == RequestStatus.COMPLETED
    assert request.completed_at is not None
    assert request.contact_email == ""
    assert mail.outbox[-1].to == [address]
    assert "The deletion of your account is complete." in mail.outbox[-1].body
    actions = list(AuditEvent.objects.filter(subject=consumer).values_list("action", flat=True))
    assert actions.count("privacy_request.partner_acknowledged") == 2
    assert "privacy_request.completed" in actions


def test_partner_reporting_failure_keeps_the_request_open(consumer, django_capture_on_commit_callbacks):
    consumer_data_seed(consumer)
    request = _executed(_scheduled(consumer, django_capture_on_commit_callbacks), django_capture_on_commit_callbacks)
    for task in request.partner_tasks.all():
        _ack(task, AckStatus.FAILED)
    privacy_request_acks_sync(request_id=request.pk)
    request.refresh_from_db()
    assert request.status == RequestStatus.WAITING_PARTNERS
    assert set(request.partner_tasks.values_list("state", flat=True)) == {PartnerTaskState.FAILED}


def test_missing_acknowledgement_escalates_to_staff_at_the_due_date(consumer, django_capture_on_commit_callbacks):
    consumer_data_seed(consumer)
    staff = StaffFactory(email="dpo@example.com")
    request = _executed(_scheduled(consumer, django_capture_on_commit_callbacks), django_capture_on_commit_callbacks)
    first, _second = request.partner_tasks.order_by("partner__name")
    _ack(first)

    with time_machine.travel(request.due_at - timedelta(minutes=1)), django_capture_on_commit_callbacks(execute=True):
        privacy_requests_tick()
    request.refresh_from_db()
    assert request.escalated_at is None

    mail.outbox.clear()
    with time_machine.travel(request.due_at + timedelta(minutes=1)):
        with django_capture_on_commit_callbacks(execute=True):
            privacy_requests_tick()
        with django_capture_on_commit_callbacks(execute=True):
            privacy_requests_tick()
    request.refresh_from_db()
    assert request.escalated_at is not None
    assert request.status == RequestStatus.WAITING_PARTNERS
    assert [m.to for m in mail.outbox] == [[staff.email]], "staff are alerted once"
    assert str(request.pk) in mail.outbox[0].body
    assert reverse("admin:privacy_requests_privacyrequest_change", args=[request.pk]) in mail.outbox[0].body
    event = AuditEvent.objects.get(subject=consumer, action="privacy_request.escalated")
    assert event.data["waiting_for"] == [_second.partner.slug]


def test_deletion_without_partners_completes_at_once(consumer, django_capture_on_commit_callbacks):
    request = _executed(_scheduled(consumer, django_capture_on_commit_callbacks), django_capture_on_commit_callbacks)
    assert request.status == RequestStatus.COMPLETED
    assert mail.outbox[-1].subject == "Your account has been deleted"


def test_deletion_does_not_start_before_the_grace_period_ends(consumer, django_capture_on_commit_callbacks):
    request = _scheduled(consumer, django_capture_on_commit_callbacks)
    assert privacy_request_deletion_execute(request_id=request.pk) is None
    privacy_requests_tick()
    request.refresh_from_db()
    consumer.refresh_from_db()
    assert request.status == RequestStatus.RECEIVED
    assert consumer.is_active


def test_deletion_runs_once(consumer, django_capture_on_commit_callbacks):
    request = _executed(_scheduled(consumer, django_capture_on_commit_callbacks), django_capture_on_commit_callbacks)
    with _after_grace():
        assert privacy_request_deletion_execute(request_id=request.pk) is None
    assert AuditEvent.objects.filter(subject=consumer, action="account.scrubbed").count() == 1


def test_cancel_during_the_grace_period_restores_everything(
    consumer_client, consumer, django_capture_on_commit_callbacks
):
    data = consumer_data_seed(consumer)

    def state() -> tuple:
        user = User.objects.get(pk=consumer.pk)
        return (
            (user.email, user.first_name, user.is_active, user.password),
            sorted(Consent.objects.filter(user=consumer).values_list("purpose__slug", "status")),
            sorted(EmailAddress.objects.filter(user=consumer).values_list("email", "verified")),
            ConsentReceipt.objects.filter(user=consumer).count(),
        )

    before = state()
    request = _scheduled(consumer, django_capture_on_commit_callbacks)
    response = consumer_client.post(reverse("requests:cancel", args=[request.pk]), follow=True)
    assert "The deletion is cancelled" in response.content.decode()
    request.refresh_from_db()
    assert request.status == RequestStatus.CANCELLED
    assert (request.contact_email, request.cancel_nonce) == ("", "")
    with _after_grace():
        privacy_requests_tick()
        assert privacy_request_deletion_execute(request_id=request.pk) is None
    assert state() == before
    assert all(s == ConsentStatus.GRANTED for _slug, s in state()[1])
    assert not OutboxEvent.objects.filter(event_type=EventType.SUBJECT_ERASURE_REQUESTED).exists()
    assert consumer_client.get("/").context["user"] == consumer
    assert len(data.purposes) == 2


def test_cancel_link_works_logged_out(client, consumer, django_capture_on_commit_callbacks):
    request = _scheduled(consumer, django_capture_on_commit_callbacks)
    link = re.search(r"https?://\S+/requests/cancel/\S+/", mail.outbox[-1].body).group(0)
    path = link.removeprefix(settings.SITE_URL)
    page = client.get(path)
    assert page.status_code == 200
    assert "Cancel the deletion of your account?" in page.content.decode()
    response = client.post(path, follow=True)
    assert "The deletion is cancelled" in response.content.decode()
    request.refresh_from_db()
    assert request.status == RequestStatus.CANCELLED
    event = AuditEvent.objects.get(subject=consumer, action="privacy_request.cancelled")
    assert event.actor_kind == "consumer"
    # The link now only reports the outcome.
    assert client.post(path).status_code == 409
    assert "The deletion is cancelled" in client.get(path).content.decode()


def test_tampered_cancel_link_is_refused_with_a_clear_error(client, consumer, django_capture_on_commit_callbacks):
    request = _scheduled(consumer, django_capture_on_commit_callbacks)
    token = cancel_token_make(request)
    for bad in (token[:-2] + ("AA" if not token.endswith("AA") else "BB"), "not-a-token", token.replace(":", ":x", 1)):
        response = client.post(reverse("requests:cancel_link", args=[bad]))
        assert response.status_code == 400
        assert "This cancellation link is not valid" in response.content.decode()
    request.refresh_from_db()
    assert request.status == RequestStatus.RECEIVED


def test_expired_cancel_link_is_refused_with_a_clear_error(client, consumer, django_capture_on_commit_callbacks):
    request = _scheduled(consumer, django_capture_on_commit_callbacks)
    url = reverse("requests:cancel_link", args=[cancel_token_make(request)])
    with _after_grace():
        response = client.post(url)
    assert response.status_code == 410
    assert "This cancellation link has expired" in response.content.decode()
    request.refresh_from_db()
    assert request.status == RequestStatus.RECEIVED


def test_cancel_link_of_another_consumer_is_404_when_signed_in(client, consumer, django_capture_on_commit_callbacks):
    request = _scheduled(consumer, django_capture_on_commit_callbacks)
    client.force_login(UserFactory(email="someone-else@example.com"))
    url = reverse("requests:cancel_link", args=[cancel_token_make(request)])
    assert client.get(url).status_code == 404
    assert client.post(url).status_code == 404
    request.refresh_from_db()
    assert request.status == RequestStatus.RECEIVED


def test_cancel_is_refused_once_the_deletion_started(consumer, django_capture_on_commit_callbacks, client):
    consumer_data_seed(consumer)
    request = _scheduled(consumer, django_capture_on_commit_callbacks)
    token = cancel_token_make(request)
    _executed(request, django_capture_on_commit_callbacks)
    with pytest.raises(DomainError) as error:
        privacy_request_cancel(request=request, actor=Actor.consumer(consumer))
    assert error.value.code == "not_cancellable"
    page = client.get(reverse("requests:cancel_link", args=[token]))
    assert "It is too late to cancel" in page.content.decode()


def test_consent_proofs_are_purged_after_their_retention(consumer, django_capture_on_commit_callbacks):
    consumer_data_seed(consumer)
    _executed(_scheduled(consumer, django_capture_on_commit_callbacks), django_capture_on_commit_callbacks)
    assert ConsentProof.objects.exists()
    assert consent_proofs_purge() == 0
    retain_until = ConsentProof.objects.latest("retain_until").retain_until
    with time_machine.travel(retain_until - timedelta(minutes=1)):
        assert consent_proofs_purge_expired() == 0
    with time_machine.travel(retain_until + timedelta(minutes=1)):
        assert consent_proofs_purge_expired() > 0
    assert not ConsentProof.objects.exists()
    assert AuditEvent.objects.filter(subject=None, action="consent_proof.purged").exists()


def test_old_password_no_longer_signs_in_after_deletion(client, consumer, django_capture_on_commit_callbacks):
    email = consumer.email
    _executed(_scheduled(consumer, django_capture_on_commit_callbacks), django_capture_on_commit_callbacks)
    response = client.post(reverse("account_login"), {"login": email, "password": PASSWORD})
    assert response.status_code == 200
    assert client.get("/").context["user"].is_anonymous


def test_contact_address_is_forgotten_after_its_retention_even_if_a_partner_never_confirms(
    consumer, settings, django_capture_on_commit_callbacks
):
    settings.PRIVACY_REQUEST_CONTACT_RETENTION_DAYS = 40
    consumer_data_seed(consumer)
    address = consumer.email
    request = _executed(_scheduled(consumer, django_capture_on_commit_callbacks), django_capture_on_commit_callbacks)
    first, second = request.partner_tasks.order_by("partner__name")
    _ack(first)
    retention_over = request.created_at + timedelta(days=40)

    with time_machine.travel(retention_over - timedelta(minutes=1)), django_capture_on_commit_callbacks(execute=True):
        privacy_requests_tick()
    request.refresh_from_db()
    assert request.contact_email == address, "kept until the retention ends"
    assert not AuditEvent.objects.filter(action="privacy_request.retention_applied").exists()

    with time_machine.travel(retention_over + timedelta(minutes=1)):
        for _tick in range(2):
            with django_capture_on_commit_callbacks(execute=True):
                privacy_requests_tick()
    request.refresh_from_db()
    assert request.contact_email == ""
    assert request.status == RequestStatus.WAITING_PARTNERS, "still waiting for the partner that never confirmed"
    (event,) = AuditEvent.objects.filter(subject=consumer, action="privacy_request.retention_applied")
    assert event.data["contact_email_forgotten"] is True
    assert event.data["retention_days"] == 40
    assert address not in str(event.data)

    mail.outbox.clear()
    _ack(second)
    with django_capture_on_commit_callbacks(execute=True):
        privacy_requests_tick()
    request.refresh_from_db()
    assert request.status == RequestStatus.COMPLETED
    assert not [m for m in mail.outbox if address in m.to], "nobody is left to tell"


def test_contact_retention_leaves_other_requests_alone(consumer, django_capture_on_commit_callbacks):
    consumer_data_seed(consumer)
    scheduled = _scheduled(consumer, django_capture_on_commit_callbacks)
    later = scheduled.created_at + timedelta(days=settings.PRIVACY_REQUEST_CONTACT_RETENTION_DAYS, minutes=1)
    assert not privacy_request_retention_apply(request_id=scheduled.pk), "not started: nothing waits for partners"
    with time_machine.travel(later):
        assert not privacy_request_retention_apply(request_id=scheduled.pk)
    scheduled.refresh_from_db()
    assert scheduled.contact_email == consumer.email


def test_partners_late_words_about_a_deleted_account_are_erased_at_the_next_tick(
    consumer, django_capture_on_commit_callbacks
):
    data = consumer_data_seed(consumer)
    request = _executed(_scheduled(consumer, django_capture_on_commit_callbacks), django_capture_on_commit_callbacks)
    for task in request.partner_tasks.all():
        _ack(task)
    with django_capture_on_commit_callbacks(execute=True):
        privacy_requests_tick()
    request.refresh_from_db()
    assert request.status == RequestStatus.COMPLETED
    # Afterwards the advertiser acknowledges the revocation the deletion sent it, naming the person.
    revocation = OutboxEvent.objects.filter(partner=data.partners[0], event_type=EventType.CONSENT_REVOKED).latest(
        "created_at"
    )
    outbox_event_ack(partner=data.partners[0], event_id=revocation.pk, status="processed", detail=f"Removed {TOKEN}")
    assert {"audit_auditnote", "consents_outboxevent"} <= set(_database_hits(TOKEN))

    with django_capture_on_commit_callbacks(execute=True):
        privacy_requests_tick()
    assert _database_hits(TOKEN) == {}
    assert AuditEvent.objects.filter(subject=consumer, action="account.free_text_scrubbed").count() == 1
    with django_capture_on_commit_callbacks(execute=True):
        privacy_requests_tick()
    assert AuditEvent.objects.filter(subject=consumer, action="account.free_text_scrubbed").count() == 1, "once"
    assert not list(audit_chain_breaks())
