"""Authorised agents: the public form, the consumer's confirmation, staff verification, the queue and activity."""

import re
from datetime import timedelta

import pytest
import time_machine
from django.contrib.admin.helpers import ACTION_CHECKBOX_NAME
from django.core import mail
from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import Client
from django.urls import reverse
from django.utils import timezone
from django.utils.translation import override

from audit.models import AuditEvent
from consents.models import Consent, ConsentStatus
from privacy_requests.deadlines import due_at_compute
from privacy_requests.models import AgentRequest, AgentRequestStatus, PrivacyRequest, RequestKind
from privacy_requests.storage import export_storage
from tests.factories import PASSWORD, UserFactory
from tests.portal.test_admin_roles import _role_client

PDF = b"%PDF-1.7\n1 0 obj << >> endobj\n%%EOF\n"


def _form(consumer_email: str = "consumer@example.com", kind: str = "export", **overrides) -> dict:
    data = {
        "kind": kind,
        "consumer_email": consumer_email,
        "agent_name": "Alex Agent",
        "agent_email": "alex@advocates.example",
        "agent_organisation": "Advocates LLP",
        "document": SimpleUploadedFile("permission.pdf", PDF, content_type="application/pdf"),
        "attest": "on",
    }
    return data | overrides


def _submit(client, django_capture_on_commit_callbacks, **form):
    with django_capture_on_commit_callbacks(execute=True):
        return client.post(reverse("requests:agent"), _form(**form))


@pytest.fixture
def agent_setup(media_root, celery_eager, db):
    return media_root


def _without_tokens(response) -> str:
    """The page without what differs on every response (CSRF token, CSP nonces)."""
    return re.sub(r'(value|nonce|content)="[^"]*"|"X-CSRFToken": "[^"]*"', "", response.content.decode())


def _confirm_path() -> str:
    return re.search(r"https?://[^/\s]+(/requests/agent/confirm/\S+/)", mail.outbox[-1].body).group(1)


def _submitted(client, consumer, django_capture_on_commit_callbacks, **form) -> tuple[AgentRequest, str]:
    response = _submit(client, django_capture_on_commit_callbacks, **form)
    assert response.status_code == 302
    return AgentRequest.objects.get(user=consumer), _confirm_path()


def test_agent_export_confirmed_by_the_consumer_becomes_their_request_marked_as_the_agents(
    client, consumer, agent_setup, django_capture_on_commit_callbacks
):
    consumer.jurisdiction = "ccpa"
    consumer.save(update_fields=["jurisdiction"])
    received = timezone.now()
    agent_request, path = _submitted(client, consumer, django_capture_on_commit_callbacks)
    assert agent_request.status == AgentRequestStatus.AWAITING_CONSUMER
    assert mail.outbox[-1].to == ["consumer@example.com"]
    assert "Alex Agent (Advocates LLP)" in mail.outbox[-1].body
    assert export_storage().open(agent_request.document_name).read() == PDF
    assert not PrivacyRequest.objects.exists()

    # The link needs the consumer signed in (and their password again, as any export).
    assert client.get(path).url.startswith(reverse("account_login"))
    client.force_login(consumer)
    client.post(reverse("account_reauthenticate"), {"password": PASSWORD})
    page = client.get(path)
    assert page.status_code == 200
    assert "Alex Agent (Advocates LLP)" in page.content.decode()
    # The consumer answers three days after the agent asked.
    AgentRequest.objects.filter(pk=agent_request.pk).update(received_at=received - timedelta(days=3))
    agent_request.refresh_from_db()
    with django_capture_on_commit_callbacks(execute=False):
        response = client.post(path, {"answer": "confirm"})
    privacy_request = PrivacyRequest.objects.get(user=consumer)
    assert response.url == privacy_request.get_absolute_url()
    assert privacy_request.kind == RequestKind.EXPORT
    assert privacy_request.agent_request == AgentRequest.objects.get(pk=agent_request.pk)
    # CCPA § 7021: 45 days from the agent's request, not from the consumer's confirmation.
    assert privacy_request.created_at == agent_request.received_at
    assert privacy_request.due_at == due_at_compute(received_at=agent_request.received_at, jurisdiction="ccpa")
    assert privacy_request.created_at < received
    assert AgentRequest.objects.get(pk=agent_request.pk).status == AgentRequestStatus.CONFIRMED

    detail = client.get(privacy_request.get_absolute_url()).content.decode()
    assert "Alex Agent (Advocates LLP), your authorised agent" in detail
    activity = client.get(reverse("audit:activity")).content.decode()
    assert "Alex Agent (Advocates LLP), your authorised agent" in activity
    assert "You confirmed the request made for you: a copy of your data" in activity
    with override("zh-hans"):
        activity_zh = client.get(reverse("audit:activity"), HTTP_ACCEPT_LANGUAGE="zh-hans").content.decode()
    assert "您的授权代理人" in activity_zh


def test_link_is_one_time(client, consumer, agent_setup, django_capture_on_commit_callbacks, reauthenticated_client):
    _agent_request, path = _submitted(reauthenticated_client, consumer, django_capture_on_commit_callbacks)
    assert reauthenticated_client.post(path, {"answer": "confirm"}).status_code == 302
    assert reauthenticated_client.post(path, {"answer": "confirm"}).status_code == 409
    assert "already been answered" in reauthenticated_client.get(path).content.decode()
    assert PrivacyRequest.objects.filter(user=consumer).count() == 1


def test_expired_link_changes_nothing(
    consumer, agent_setup, django_capture_on_commit_callbacks, reauthenticated_client, settings
):
    _agent_request, path = _submitted(reauthenticated_client, consumer, django_capture_on_commit_callbacks)
    with time_machine.travel(timezone.now() + timedelta(days=settings.AGENT_REQUEST_CONFIRM_DAYS, hours=1)):
        reauthenticated_client.force_login(consumer)
        response = reauthenticated_client.get(path)
    assert response.status_code == 410
    assert not PrivacyRequest.objects.exists()
    assert AgentRequest.objects.get().status == AgentRequestStatus.AWAITING_CONSUMER


def test_tampered_link_is_refused(consumer, agent_setup, django_capture_on_commit_callbacks, reauthenticated_client):
    _agent_request, path = _submitted(reauthenticated_client, consumer, django_capture_on_commit_callbacks)
    assert (
        reauthenticated_client.post(path.replace("/confirm/", "/confirm/x"), {"answer": "confirm"}).status_code == 400
    )
    assert not PrivacyRequest.objects.exists()


def test_another_consumer_cannot_confirm_or_decline(
    client, consumer, other_consumer, agent_setup, django_capture_on_commit_callbacks
):
    _agent_request, path = _submitted(client, consumer, django_capture_on_commit_callbacks)
    client.force_login(other_consumer)
    client.post(reverse("account_reauthenticate"), {"password": PASSWORD})
    events = AuditEvent.objects.count()
    for answer in ("confirm", "decline"):
        assert client.post(path, {"answer": answer}).status_code == 404
    assert client.get(path).status_code == 404
    assert AgentRequest.objects.get().status == AgentRequestStatus.AWAITING_CONSUMER
    assert not PrivacyRequest.objects.exists()
    assert AuditEvent.objects.count() == events


def test_this_wasnt_me_closes_the_request_and_is_audited(
    consumer, agent_setup, django_capture_on_commit_callbacks, reauthenticated_client
):
    agent_request, path = _submitted(
        reauthenticated_client, consumer, django_capture_on_commit_callbacks, kind="deletion"
    )
    assert reauthenticated_client.post(path, {"answer": "decline"}).status_code == 302
    agent_request.refresh_from_db()
    assert agent_request.status == AgentRequestStatus.DECLINED
    assert agent_request.decided_at
    assert not PrivacyRequest.objects.exists()
    event = AuditEvent.objects.filter(subject=consumer).latest("seq")
    assert event.data["agent_step"] == "declined"
    assert event.actor_kind == "consumer"
    assert reauthenticated_client.post(path, {"answer": "confirm"}).status_code == 409


def test_opt_out_withdraws_the_sale_and_sharing_purposes(
    consumer, consent_catalogue, agent_setup, django_capture_on_commit_callbacks, reauthenticated_client
):
    from audit.services import Actor
    from consents.services.consents import consent_grant

    consent_grant(user=consumer, purpose=consent_catalogue["ads"], actor=Actor.consumer(consumer))
    consent_grant(user=consumer, purpose=consent_catalogue["offers"], actor=Actor.consumer(consumer))
    _agent_request, path = _submitted(
        reauthenticated_client, consumer, django_capture_on_commit_callbacks, kind="opt_out"
    )
    assert Consent.objects.get(user=consumer, purpose=consent_catalogue["ads"]).status == ConsentStatus.GRANTED
    reauthenticated_client.post(path, {"answer": "confirm"})
    assert Consent.objects.get(user=consumer, purpose=consent_catalogue["ads"]).status == ConsentStatus.REVOKED
    assert Consent.objects.get(user=consumer, purpose=consent_catalogue["offers"]).status == ConsentStatus.GRANTED
    assert AgentRequest.objects.get().status == AgentRequestStatus.CONFIRMED


@pytest.mark.parametrize("address", ["nobody@example.com", "unverified@example.com"])
def test_unknown_address_gets_the_same_answer_and_nothing_is_sent_or_kept(
    client, consumer, agent_setup, django_capture_on_commit_callbacks, address
):
    UserFactory(email="unverified@example.com", verified_email=False)
    known = _submit(client, django_capture_on_commit_callbacks)
    mail.outbox.clear()
    unknown = _submit(client, django_capture_on_commit_callbacks, consumer_email=address)
    assert (unknown.status_code, unknown.url) == (known.status_code, known.url)
    assert _without_tokens(client.get(unknown.url)) == _without_tokens(client.get(known.url))
    assert mail.outbox == []
    closed = AgentRequest.objects.get(consumer_email=address)
    assert closed.status == AgentRequestStatus.NO_ACCOUNT
    assert closed.user is None
    assert closed.document_name == ""
    assert export_storage().listdir("agents")[1] == [
        AgentRequest.objects.get(user=consumer).document_name.split("/")[1]
    ]


@pytest.mark.parametrize(
    ("document", "message"),
    [
        (
            SimpleUploadedFile("x.pdf", b"MZ\x90\x00 not a pdf", content_type="application/pdf"),
            "Upload a PDF, PNG or JPEG file.",
        ),
        (SimpleUploadedFile("x.html", b"<html>", content_type="text/html"), "Upload a PDF, PNG or JPEG file."),
        (SimpleUploadedFile("big.pdf", PDF + b"0" * 2048, content_type="application/pdf"), "The file is too large"),
    ],
)
def test_upload_is_checked_for_type_and_size(client, agent_setup, settings, document, message):
    settings.AGENT_DOCUMENT_MAX_BYTES = 1024
    response = client.post(reverse("requests:agent"), _form(document=document))
    assert response.status_code == 400
    assert message in response.content.decode()
    assert not AgentRequest.objects.exists()


def test_upload_error_in_chinese(client, agent_setup):
    bad = SimpleUploadedFile("x.txt", b"hello", content_type="text/plain")
    response = client.post(reverse("requests:agent"), _form(document=bad), HTTP_ACCEPT_LANGUAGE="zh-hans")
    assert "请上传 PDF、PNG 或 JPEG 文件。" in response.content.decode()


def test_form_is_rate_limited_per_consumer_address(client, agent_setup, django_capture_on_commit_callbacks):
    for _attempt in range(3):
        assert _submit(client, django_capture_on_commit_callbacks).status_code == 302
    assert _submit(client, django_capture_on_commit_callbacks).status_code == 429
    assert AgentRequest.objects.count() == 3


def test_form_is_linked_from_the_privacy_notice_and_requests_pages(client, consumer_client):
    url = reverse("requests:agent")
    assert url in client.get(reverse("privacy_notice")).content.decode()
    assert url in consumer_client.get(reverse("requests:list")).content.decode()


def _verify(client, agent_request, note="Notarised power of attorney checked, ticket 77"):
    return client.post(
        reverse("admin:privacy_requests_agentrequest_changelist"),
        {"action": "verify", ACTION_CHECKBOX_NAME: [agent_request.pk], "apply": "1", "note": note},
    )


@pytest.mark.parametrize(
    ("role", "allowed"),
    [("privacy officer", True), ("support agent", False), ("auditor", False), ("partner manager", False)],
)
def test_staff_verification_per_role(client, consumer, agent_setup, django_capture_on_commit_callbacks, role, allowed):
    agent_request, _path = _submitted(client, consumer, django_capture_on_commit_callbacks, kind="deletion")
    staff_client = _role_client(client, role)
    events = AuditEvent.objects.count()
    _verify(staff_client, agent_request)
    agent_request.refresh_from_db()
    document = staff_client.get(reverse("admin:privacy_requests_agentrequest_document", args=[agent_request.pk]))
    if allowed:
        assert agent_request.status == AgentRequestStatus.VERIFIED
        assert agent_request.decided_by is not None
        deletion = PrivacyRequest.objects.get(user=consumer, kind=RequestKind.DELETION)
        assert deletion.agent_request == agent_request
        verified = AuditEvent.objects.get(subject=consumer, data__agent_step="verified")
        assert verified.actor_kind == "staff"
        assert verified.note.text.startswith("Notarised")
        assert document.status_code == 200
        assert b"".join(document.streaming_content) == PDF
        queue = staff_client.get(reverse("admin:privacy_requests_privacyrequest_changelist"), {"made_by": "agent"})
        assert "Agent: Alex Agent (Advocates LLP)" in queue.content.decode()
        mine = staff_client.get(reverse("admin:privacy_requests_privacyrequest_changelist"), {"made_by": "consumer"})
        assert "Agent: Alex Agent" not in mine.content.decode()
    else:
        assert agent_request.status == AgentRequestStatus.AWAITING_CONSUMER
        assert not PrivacyRequest.objects.exists()
        assert document.status_code in (302, 403)
        assert AuditEvent.objects.filter(data__agent_step="verified").count() == 0
        assert AuditEvent.objects.count() >= events


def test_verification_needs_a_note(client, consumer, agent_setup, django_capture_on_commit_callbacks):
    agent_request, _path = _submitted(client, consumer, django_capture_on_commit_callbacks)
    response = _verify(_role_client(client, "privacy officer"), agent_request, note="")
    assert response.status_code == 200
    assert AgentRequest.objects.get().status == AgentRequestStatus.AWAITING_CONSUMER


@pytest.mark.parametrize(
    ("role", "allowed"),
    [("privacy officer", True), ("support agent", False), ("auditor", False), ("partner manager", False)],
)
def test_staff_rejecting_an_agents_authority_closes_the_request(
    client, consumer, agent_setup, django_capture_on_commit_callbacks, role, allowed
):
    agent_request, path = _submitted(client, consumer, django_capture_on_commit_callbacks, kind="deletion")
    staff_client = _role_client(client, role)

    staff_client.post(
        reverse("admin:privacy_requests_agentrequest_changelist"),
        {"action": "reject", ACTION_CHECKBOX_NAME: [agent_request.pk], "apply": "1", "note": "Not signed, ticket 78"},
    )

    agent_request.refresh_from_db()
    if not allowed:
        assert agent_request.status == AgentRequestStatus.AWAITING_CONSUMER
        assert not AuditEvent.objects.filter(data__agent_step="rejected").exists()
        return
    assert agent_request.status == AgentRequestStatus.REJECTED
    assert not PrivacyRequest.objects.exists()
    rejected = AuditEvent.objects.get(subject=consumer, data__agent_step="rejected")
    assert (rejected.action, rejected.actor_kind) == ("privacy_request.rejected", "staff")
    assert rejected.note.text == "Not signed, ticket 78"
    # The consumer's link no longer carries anything out, and their activity says why nothing happened.
    consumer_client = Client()
    consumer_client.force_login(consumer)
    consumer_client.post(path, {"answer": "confirm"})
    assert not PrivacyRequest.objects.exists()
    activity = consumer_client.get(reverse("audit:activity")).content.decode()
    assert "did not accept the agent" in activity


def test_rejection_needs_a_note(client, consumer, agent_setup, django_capture_on_commit_callbacks):
    agent_request, _path = _submitted(client, consumer, django_capture_on_commit_callbacks)
    response = _role_client(client, "privacy officer").post(
        reverse("admin:privacy_requests_agentrequest_changelist"),
        {"action": "reject", ACTION_CHECKBOX_NAME: [agent_request.pk], "apply": "1", "note": " "},
    )
    assert response.status_code == 200
    assert AgentRequest.objects.get().status == AgentRequestStatus.AWAITING_CONSUMER


def test_a_dispatch_lost_with_the_broker_is_made_by_the_sweep(
    client, consumer, agent_setup, django_capture_on_commit_callbacks
):
    """The form's queued dispatch never ran (no on-commit callbacks here): the periodic sweep does it."""
    from privacy_requests.tasks import agent_requests_dispatch_pending

    submitted_at = timezone.now()
    with time_machine.travel(submitted_at, tick=False):
        assert client.post(reverse("requests:agent"), _form()).status_code == 302
        assert agent_requests_dispatch_pending() == 0  # too early: the queued dispatch goes first
    agent_request = AgentRequest.objects.get()
    assert agent_request.status == AgentRequestStatus.RECEIVED

    with (
        time_machine.travel(submitted_at + timedelta(minutes=3), tick=False),
        django_capture_on_commit_callbacks(execute=True),
    ):
        assert agent_requests_dispatch_pending() == 1
        assert agent_requests_dispatch_pending() == 0

    agent_request.refresh_from_db()
    assert (agent_request.status, agent_request.user) == (AgentRequestStatus.AWAITING_CONSUMER, consumer)
    assert mail.outbox[-1].to == [consumer.email]


def test_agents_of_requests_that_came_to_nothing_are_forgotten_after_the_contact_retention(
    client, consumer, agent_setup, django_capture_on_commit_callbacks, settings
):
    from privacy_requests.services.agents import agent_requests_forget

    kept, _path = _submitted(client, consumer, django_capture_on_commit_callbacks)  # awaiting the consumer
    document = export_storage().save("agents/left-behind.pdf", SimpleUploadedFile("p.pdf", PDF))
    nobody = AgentRequest.objects.create(
        kind="export",
        status=AgentRequestStatus.NO_ACCOUNT,
        consumer_email="nobody@example.com",
        agent_name="Alex Agent",
        agent_email="alex@advocates.example",
        document_name=document,
    )
    retention = timedelta(days=settings.PRIVACY_REQUEST_CONTACT_RETENTION_DAYS)

    with django_capture_on_commit_callbacks(execute=True):
        assert agent_requests_forget(now=nobody.received_at + retention - timedelta(minutes=1)) == 0
        assert agent_requests_forget(now=nobody.received_at + retention) == 1
        assert agent_requests_forget(now=nobody.received_at + retention) == 0

    nobody.refresh_from_db()
    assert (nobody.consumer_email, nobody.agent_name, nobody.agent_email, nobody.document_name) == ("", "", "", "")
    assert (nobody.kind, nobody.status) == ("export", AgentRequestStatus.NO_ACCOUNT)
    assert not export_storage().exists(document)
    kept.refresh_from_db()
    assert kept.agent_email == "alex@advocates.example"  # still open: nothing forgotten
