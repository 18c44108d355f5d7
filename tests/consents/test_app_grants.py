"""Ending connected-app grants: the service, the expiry task, account deletion, the consumer's page, verdicts."""

from datetime import timedelta

import pytest
import time_machine
from django.conf import settings
from django.contrib.auth.models import Group
from django.urls import reverse
from django.utils import timezone
from oauth2_provider.models import AccessToken, Grant, RefreshToken

from audit.models import AccessVerdict, AuditEvent
from audit.services import Actor
from audit.signing import document_verify
from consents.models import AppGrant, AppGrantToken, ConsentReceipt, OutboxEvent, PartnerSubject
from consents.services.access import AccessReport, access_events_ingest
from consents.services.apps import app_grant_revoke
from consents.services.partners import partner_subject_ensure
from consents.tasks.expiry import app_grants_expire_due
from portal.roles import ROLE_PERMISSIONS
from privacy_requests.services.deletion import privacy_request_deletion_execute
from privacy_requests.services.requests import privacy_request_deletion_create
from tests.factories import (
    AppGrantFactory,
    DataCategoryFactory,
    PurposeFactory,
    StaffFactory,
    UserFactory,
    app_grant_tokens,
)

pytestmark = pytest.mark.django_db


@pytest.fixture
def grant(consumer):
    contact = DataCategoryFactory(slug="contact")
    balances = DataCategoryFactory(slug="balances")
    purpose = PurposeFactory(slug="budgeting", name="Budgeting", notice__categories=[contact, balances])
    return AppGrantFactory(user=consumer, purpose=purpose, categories=[balances], app__name="Budget Buddy")


def _ended_state(grant):
    grant.refresh_from_db()
    return grant.status, grant.revocation_reason, grant.changed_by


def test_revoke_deletes_every_token_and_code_of_the_grant_only(grant, consumer):
    app_grant_tokens(grant, with_code=True)
    other = AppGrantFactory(user=consumer, app=grant.app, purpose=grant.purpose)
    app_grant_tokens(other)

    app_grant_revoke(grant, initiator=Actor.consumer(consumer), reason="user_action", note="  changed my mind ")

    assert _ended_state(grant) == ("revoked", "user_action", "consumer")
    assert grant.revoked_at is not None
    assert grant.revocation_note == "changed my mind"
    assert not AppGrantToken.objects.filter(grant=grant).exists()
    assert AccessToken.objects.count() == 1
    assert RefreshToken.objects.count() == 1
    assert not Grant.objects.exists()
    assert AppGrantToken.objects.filter(grant=other).count() == 2


def test_revoke_tells_the_apps_partner_with_the_grant_id(grant, consumer):
    app_grant_revoke(grant, initiator=Actor.consumer(consumer), reason="user_action")

    [event] = OutboxEvent.objects.all()
    assert event.partner == grant.app.partner
    assert event.event_type == "consent.revoked"
    data = event.payload["data"]
    subject = PartnerSubject.objects.get(partner=grant.app.partner, user=consumer)
    assert data["grant_id"] == str(grant.pk)
    assert data["subject_id"] == subject.subject_id
    assert (data["purpose"], data["status"], data["granted"], data["reason"]) == (
        "budgeting",
        "revoked",
        False,
        "user_action",
    )


def test_revoke_records_audit_event_and_signed_receipt(grant, consumer):
    app_grant_revoke(grant, initiator=Actor.consumer(consumer), reason="user_action")

    [audit] = AuditEvent.objects.filter(subject=consumer, action="consent.revoked")
    assert audit.target_id == str(grant.pk)
    assert audit.data["app_grant"] == str(grant.pk)
    receipt = ConsentReceipt.objects.get(app_grant=grant)
    assert receipt.consent is None
    assert receipt.event == "revoked"
    assert audit.data["receipt"] == str(receipt.pk)
    payload = document_verify(receipt.jws)
    assert payload == receipt.payload
    assert payload["connectedApp"]["grantId"] == str(grant.pk)
    assert payload["services"][0]["purposes"][0]["piiCategory"] == ["balances"]
    assert payload["withdrawal"]["reason"] == "user_action"


def test_revoking_an_ended_grant_changes_nothing(grant, consumer):
    app_grant_revoke(grant, initiator=Actor.consumer(consumer), reason="user_action")
    grant.refresh_from_db()
    revoked_at = grant.revoked_at
    counts = (OutboxEvent.objects.count(), AuditEvent.objects.count(), ConsentReceipt.objects.count())

    again = app_grant_revoke(grant, initiator=Actor.partner(grant.app.partner), reason="business_rule")

    assert (again.revoked_at, again.changed_by, again.revocation_reason) == (revoked_at, "consumer", "user_action")
    assert (OutboxEvent.objects.count(), AuditEvent.objects.count(), ConsentReceipt.objects.count()) == counts


def test_expiry_task_expires_due_grants_only(consumer):
    due = AppGrantFactory(user=consumer, duration_type="time_bound", expires_at=timezone.now() + timedelta(days=1))
    later = AppGrantFactory(user=consumer, duration_type="time_bound", expires_at=timezone.now() + timedelta(days=9))
    app_grant_tokens(due)

    with time_machine.travel(timezone.now() + timedelta(days=2)):
        assert app_grants_expire_due() == 1
        assert app_grants_expire_due() == 0

    assert _ended_state(due) == ("expired", "expired", "system")
    assert not AppGrantToken.objects.filter(grant=due).exists()
    assert OutboxEvent.objects.get().event_type == "consent.expired"
    assert ConsentReceipt.objects.get(app_grant=due).event == "expired"
    assert _ended_state(later) == ("granted", "", "consumer")


def test_account_deletion_ends_every_grant(grant, consumer, django_capture_on_commit_callbacks):
    app_grant_tokens(grant)
    with django_capture_on_commit_callbacks(execute=True):
        request = privacy_request_deletion_create(user=consumer, language="en")
    with (
        time_machine.travel(timezone.now() + timedelta(days=settings.DELETION_GRACE_DAYS, minutes=1)),
        django_capture_on_commit_callbacks(execute=True),
    ):
        assert privacy_request_deletion_execute(request_id=request.pk) is not None

    assert _ended_state(grant)[:2] == ("revoked", "account_deleted")
    assert not AccessToken.objects.exists()
    assert OutboxEvent.objects.filter(partner=grant.app.partner, event_type="consent.revoked").exists()
    scrubbed = AuditEvent.objects.get(subject=consumer, action="account.scrubbed")
    assert scrubbed.data["app_grants_ended"] == [str(grant.pk)]


# The consumer's page -------------------------------------------------------------------------


def test_connected_page_lists_active_and_past_grants(consumer_client, grant, consumer):
    ended = AppGrantFactory(user=consumer, app__name="Old Tracker")
    app_grant_revoke(ended, initiator=Actor.consumer(consumer), reason="user_action")

    response = consumer_client.get(reverse("connected:list"))

    assert response.status_code == 200
    assert [r.grant for r in response.context["active"]] == [grant]
    assert [r.grant for r in response.context["past"]] == [ended]
    body = response.content.decode()
    assert "Budget Buddy" in body
    assert "Past connections" in body
    assert reverse("connected:withdraw", args=[grant.pk]) in body
    partner = grant.app.partner
    assert f"({partner.get_kind_display()}, {partner.country_name})" in body, "the country's name, not its code"


def test_connected_page_needs_login(client):
    response = client.get(reverse("connected:list"))
    assert response.status_code == 302


def test_nav_and_dashboard_link_to_connected_apps(consumer_client):
    body = consumer_client.get(reverse("home")).content.decode()
    assert body.count(f'href="{reverse("connected:list")}"') >= 2


def test_withdraw_previews_then_ends_the_grant(consumer_client, grant):
    app_grant_tokens(grant)
    preview = consumer_client.get(reverse("connected:withdraw", args=[grant.pk]))
    assert preview.status_code == 200
    assert "Who we will tell" in preview.content.decode()
    assert _ended_state(grant)[0] == "granted"

    response = consumer_client.post(reverse("connected:withdraw", args=[grant.pk]), {"note": ""}, follow=True)

    assert response.redirect_chain[-1][0] == reverse("connected:list")
    assert _ended_state(grant) == ("revoked", "user_action", "consumer")
    assert not AccessToken.objects.exists()
    assert next(str(m) for m in response.context["messages"]).startswith("“Budget Buddy” is disconnected")


def test_another_consumer_cannot_see_or_withdraw_a_grant(client, grant, other_consumer):
    app_grant_tokens(grant)
    client.force_login(other_consumer)

    assert grant.app.name not in client.get(reverse("connected:list")).content.decode()
    assert client.get(reverse("connected:withdraw", args=[grant.pk])).status_code == 404
    assert client.post(reverse("connected:withdraw", args=[grant.pk])).status_code == 404

    assert _ended_state(grant) == ("granted", "", "consumer")
    assert AppGrantToken.objects.filter(grant=grant).count() == 2
    assert not OutboxEvent.objects.exists()


def _visitor(kind: str):
    """Someone who is not the grant's consumer: another consumer, a member of one staff role, a superuser."""
    if kind == "anonymous":
        return None
    if kind == "superuser":
        return StaffFactory()
    if kind == "consumer":
        return UserFactory()
    user = UserFactory(is_staff=True)
    user.groups.add(Group.objects.get_or_create(name=kind)[0])
    return user


@pytest.mark.parametrize("kind", ["anonymous", "consumer", "superuser", *ROLE_PERMISSIONS])
def test_nobody_but_its_consumer_sees_or_withdraws_a_grant(client, grant, kind):
    """The consumer pages for connected apps, against everyone else; the database stays as it was."""
    app_grant_tokens(grant)
    if (visitor := _visitor(kind)) is not None:
        client.force_login(visitor)
    withdraw = reverse("connected:withdraw", args=[grant.pk])

    answers = [client.get(withdraw), client.post(withdraw, {"note": "not mine"})]
    listing = client.get(reverse("connected:list"))

    if visitor is None:
        assert all(a.status_code == 302 and a["Location"].startswith(reverse("account_login")) for a in answers)
        assert listing.status_code == 302
    else:
        assert [a.status_code for a in answers] == [404, 404]
        assert grant.app.name not in listing.content.decode()
    assert _ended_state(grant) == ("granted", "", "consumer")
    assert AppGrantToken.objects.filter(grant=grant).count() == 2
    assert not OutboxEvent.objects.exists()
    assert not ConsentReceipt.objects.filter(app_grant=grant).exists()


def test_withdrawing_an_ended_grant_says_so(consumer_client, grant, consumer):
    app_grant_revoke(grant, initiator=Actor.consumer(consumer), reason="user_action")
    response = consumer_client.post(reverse("connected:withdraw", args=[grant.pk]), follow=True)
    assert response.redirect_chain[-1][0] == reverse("connected:list")
    assert AppGrant.objects.get(pk=grant.pk).revocation_reason == "user_action"
    assert ConsentReceipt.objects.filter(app_grant=grant).count() == 1


# Access verdicts -----------------------------------------------------------------------------


def _report(subject, categories, at=None, event_id="e1"):
    return AccessReport(
        event_id=event_id,
        subject_id=subject.subject_id,
        purpose="budgeting",
        categories=tuple(categories),
        accessed_at=at or timezone.now(),
        action="read",
    )


def test_access_under_an_active_grant_is_covered_without_a_consent(grant, consumer):
    subject = partner_subject_ensure(partner=grant.app.partner, user=consumer)
    [result] = access_events_ingest(partner=grant.app.partner, reports=[_report(subject, ["balances"])])
    assert result.verdict == AccessVerdict.COVERED


def test_access_beyond_the_grants_categories_is_outside_what_was_shared(grant, consumer):
    subject = partner_subject_ensure(partner=grant.app.partner, user=consumer)
    [result] = access_events_ingest(partner=grant.app.partner, reports=[_report(subject, ["balances", "contact"])])
    assert result.verdict == AccessVerdict.OUTSIDE_SHARING


def test_access_after_withdrawal_is_not_covered_but_before_it_is(grant, consumer):
    subject = partner_subject_ensure(partner=grant.app.partner, user=consumer)
    before = timezone.now()
    with time_machine.travel(before + timedelta(minutes=5)):
        app_grant_revoke(grant, initiator=Actor.consumer(consumer), reason="user_action")
    with time_machine.travel(before + timedelta(minutes=10)):
        results = access_events_ingest(
            partner=grant.app.partner,
            reports=[
                _report(subject, ["balances"], at=before + timedelta(minutes=1), event_id="before"),
                _report(subject, ["balances"], at=before + timedelta(minutes=8), event_id="after"),
            ],
        )
    assert [r.verdict for r in results] == [AccessVerdict.COVERED, AccessVerdict.OUTSIDE_SHARING]


def test_another_partners_grant_does_not_cover_an_access(grant, consumer):
    from tests.factories import PartnerFactory

    other = PartnerFactory()
    subject = partner_subject_ensure(partner=other, user=consumer)
    [result] = access_events_ingest(partner=other, reports=[_report(subject, ["balances"])])
    assert result.verdict == AccessVerdict.OUTSIDE_SHARING


def test_connected_page_shows_the_last_read_while_each_grant_ran(consumer_client, grant, consumer):
    """A connection made again does not inherit the reads of the one before it."""
    subject = partner_subject_ensure(partner=grant.app.partner, user=consumer)
    start = grant.granted_at
    access_events_ingest(
        partner=grant.app.partner,
        reports=[
            _report(subject, ["balances"], at=start - timedelta(days=2), event_id="earlier"),
            _report(subject, ["balances"], at=start + timedelta(minutes=1), event_id="during"),
        ],
    )
    with time_machine.travel(start + timedelta(minutes=5), tick=False):
        app_grant_revoke(grant, initiator=Actor.consumer(consumer), reason="user_action")
        later = AppGrantFactory(user=consumer, purpose=grant.purpose, app=grant.app)

    page = consumer_client.get(reverse("connected:list"))

    (running,) = page.context["active"]
    (ended,) = page.context["past"]
    assert (running.grant, running.last_access) == (later, None)
    assert (ended.grant, ended.last_access) == (grant, start + timedelta(minutes=1))


def test_past_connections_read_as_chinese_sentences(consumer_client, grant, consumer):
    app_grant_revoke(grant, initiator=Actor.consumer(consumer), reason="user_action")
    consumer_client.cookies["django_language"] = "zh-hans"

    page = consumer_client.get(reverse("connected:list")).content.decode()

    line = page[page.index(f'<li id="grant-{grant.pk}">') :]
    line = line[: line.index("</li>")]
    assert "<strong>Budget Buddy</strong>" in line
    assert "\uff1a" in line  # a full-width colon before the reason
    assert line.rstrip().endswith("。")
    assert ": " not in line
