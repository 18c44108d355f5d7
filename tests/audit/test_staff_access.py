"""Justified staff access: the reason gate in the admin, what the consumer reads, and the count of
accesses no open privacy request or ticket justifies."""

from datetime import UTC, datetime, timedelta
from urllib.parse import parse_qs, urlsplit

import pytest
import time_machine
from allauth.mfa.totp.internal.auth import TOTP, generate_totp_secret
from django.contrib.auth.models import Group
from django.urls import reverse
from django.utils import timezone

from audit.access import access_event_record_staff
from audit.models import AccessEvent, AuditEvent, StaffAccessReason, StaffAccessReasonCode
from audit.services import Actor
from audit.staff_access import staff_access_justification, staff_access_reason_state
from consents.services.consents import consent_grant
from portal.roles import ROLE_PERMISSIONS, staff_roles_ensure
from privacy_requests.models import PrivacyRequest, RequestStatus
from privacy_requests.services.requests import privacy_request_export_create
from tests.factories import PurposeFactory, StaffFactory, UserFactory, staff_reason_state

pytestmark = pytest.mark.django_db

REASON_URL = "admin:audit_staff_access_reason"


def _mfa(user):
    TOTP.activate(user, generate_totp_secret())
    return user


@pytest.fixture
def agent(db):
    return _mfa(StaffFactory(email="agent@example.com"))


@pytest.fixture
def agent_client(client, agent):
    client.force_login(agent)
    return client


def _counts():
    return AccessEvent.objects.count(), AuditEvent.objects.count(), StaffAccessReason.objects.count()


def test_staff_viewing_a_consumer_is_recorded_as_access_and_audited(consumer):
    staff = StaffFactory(email="agent@example.com")
    event = access_event_record_staff(staff=staff, consumer=consumer, what="Opened the account page")
    assert event.user == consumer
    assert event.staff_user == staff
    assert event.purpose.slug == "customer-support"
    assert AuditEvent.objects.filter(subject=consumer, action="access.staff_viewed").exists()


def test_without_a_reason_the_consumer_page_redirects_to_the_reason_form_and_shows_nothing(agent_client, consumer):
    change = reverse("admin:portal_user_change", args=[consumer.pk])
    before = _counts()
    response = agent_client.get(change)
    assert response.status_code == 302
    target = urlsplit(response["Location"])
    assert target.path == reverse(REASON_URL)
    assert parse_qs(target.query) == {"consumer": [str(consumer.pk)], "next": [change]}
    assert _counts() == before


def test_without_a_reason_a_change_posted_to_a_consumer_changes_nothing(agent_client, consumer):
    change = reverse("admin:portal_user_change", args=[consumer.pk])
    response = agent_client.post(change, {"email": "taken-over@example.com", "jurisdiction": consumer.jurisdiction})
    assert response.status_code == 302
    assert reverse(REASON_URL) in response["Location"]
    consumer.refresh_from_db()
    assert consumer.email == "consumer@example.com"


def test_stating_a_reason_returns_to_the_page_and_each_access_carries_it(agent_client, consumer, agent):
    change = reverse("admin:portal_user_change", args=[consumer.pk])
    form_url = agent_client.get(change)["Location"]
    response = agent_client.post(form_url, {"code": "support_request", "reference": "#4821"})
    assert response.status_code == 302
    assert response["Location"] == change
    assert agent_client.get(change).status_code == 200
    event = AccessEvent.objects.get(user=consumer)
    assert (event.staff_user, event.staff_reason, event.staff_reference, event.staff_records) == (
        agent,
        StaffAccessReasonCode.SUPPORT_REQUEST,
        "#4821",
        "portal.user",
    )
    audit = AuditEvent.objects.get(subject=consumer, action="access.staff_viewed")
    assert audit.data["staff_reason"] == "support_request"
    assert audit.note.text == "#4821"


def test_the_reason_form_is_labelled_and_explains_its_errors(agent_client, consumer):
    url = reverse(REASON_URL) + f"?consumer={consumer.pk}"
    page = agent_client.get(url)
    assert page.status_code == 200
    html = page.content.decode()
    assert '<label for="id_reference"' in html
    assert "<legend" in html
    assert consumer.email in html

    empty = agent_client.post(url, {})
    assert set(empty.context["form"].errors) == {"code", "reference"}
    assert 'aria-invalid="true"' in empty.content.decode()

    vague = agent_client.post(url, {"code": "support_request", "reference": "the customer called"})
    assert vague.context["form"].errors["reference"] == ["Give the ticket number, for example #4821 or SUP-4821."]

    unknown = agent_client.post(url, {"code": "privacy_request", "reference": "0123abcd"})
    assert "no privacy request with that reference" in unknown.context["form"].errors["reference"][0]

    bogus = agent_client.post(url, {"code": "gossip", "reference": "#1"})
    assert "code" in bogus.context["form"].errors
    assert StaffAccessReason.objects.count() == 0


def test_privacy_request_handling_names_one_of_this_consumers_requests(agent_client, consumer, other_consumer):
    theirs = privacy_request_export_create(user=other_consumer, language="en")
    url = reverse(REASON_URL) + f"?consumer={consumer.pk}"
    refused = agent_client.post(url, {"code": "privacy_request", "reference": theirs.pk.hex[:8]})
    assert refused.status_code == 200
    own = privacy_request_export_create(user=consumer, language="en")
    accepted = agent_client.post(url, {"code": "privacy_request", "reference": str(own.pk)})
    assert accepted.status_code == 302
    assert StaffAccessReason.objects.get().reference == str(own.pk)


def test_the_reason_form_only_returns_into_the_admin(agent_client, consumer):
    url = reverse(REASON_URL) + f"?consumer={consumer.pk}&next=https://evil.example/admin/"
    response = agent_client.post(url, {"code": "legal_request", "reference": "2026/LR/17"})
    assert response["Location"] == reverse("admin:portal_user_change", args=[consumer.pk])


def test_the_reason_form_refuses_staff_and_unknown_people_as_subjects(agent_client, agent):
    assert agent_client.get(reverse(REASON_URL) + f"?consumer={agent.pk}").status_code == 404
    assert agent_client.get(reverse(REASON_URL) + "?consumer=999999").status_code == 404
    assert agent_client.get(reverse(REASON_URL) + "?consumer=x").status_code == 404


def test_a_reason_expires_after_the_setting(agent_client, consumer, agent, settings):
    settings.STAFF_ACCESS_REASON_MINUTES = 10
    change = reverse("admin:consents_consent_change", args=[_consent(consumer).pk])
    start = timezone.now()
    with time_machine.travel(start, tick=False):
        staff_reason_state(agent, consumer)
    with time_machine.travel(start + timedelta(minutes=9, seconds=59), tick=False):
        assert agent_client.get(change).status_code == 200
    with time_machine.travel(start + timedelta(minutes=10), tick=False):
        before = _counts()
        assert agent_client.get(change).status_code == 302
        assert _counts() == before


def test_a_reason_for_one_consumer_does_not_open_another(agent_client, consumer, other_consumer, agent):
    staff_reason_state(agent, consumer)
    assert agent_client.get(reverse("admin:portal_user_change", args=[consumer.pk])).status_code == 200
    before = _counts()
    response = agent_client.get(reverse("admin:portal_user_change", args=[other_consumer.pk]))
    assert response.status_code == 302
    assert _counts() == before
    assert not AccessEvent.objects.filter(user=other_consumer).exists()


def test_a_reason_is_the_staff_members_own(agent_client, consumer):
    staff_reason_state(StaffFactory(email="colleague@example.com"), consumer)
    assert agent_client.get(reverse("admin:portal_user_change", args=[consumer.pk])).status_code == 302


def _consent(user):
    return consent_grant(user=user, purpose=PurposeFactory(slug=f"offers-{user.pk}"), actor=Actor.consumer(user))


def test_every_page_of_one_consumers_records_is_gated(agent_client, consumer, agent):
    consent = _consent(consumer)
    export = privacy_request_export_create(user=consumer, language="en")
    version = consent.history.order_by("history_id").first()
    pages = [
        reverse("admin:portal_user_change", args=[consumer.pk]),
        reverse("admin:portal_user_history", args=[consumer.pk]),
        reverse("admin:portal_user_delete", args=[consumer.pk]),
        reverse("admin:consents_consent_change", args=[consent.pk]),
        reverse("admin:consents_consent_history", args=[consent.pk]),
        reverse("admin:consents_consent_simple_history", args=[consent.pk, version.history_id]),
        reverse("admin:consents_consentreceipt_change", args=[consent.receipts.get().pk]),
        reverse("admin:privacy_requests_privacyrequest_change", args=[export.pk]),
        reverse("admin:audit_auditevent_change", args=[AuditEvent.objects.filter(subject=consumer).first().pk]),
        reverse("admin:account_emailaddress_change", args=[consumer.emailaddress_set.get().pk]),
        # A list searched down to one consumer's records shows that consumer's records.
        reverse("admin:consents_consent_changelist") + f"?q={consumer.email}",
    ]
    before = _counts()
    refused = [page for page in pages if agent_client.get(page).status_code != 302]
    assert refused == []
    assert _counts() == before
    staff_reason_state(agent, consumer)
    assert [page for page in pages if agent_client.get(page).status_code != 200] == []
    recorded = set(AccessEvent.objects.filter(user=consumer).values_list("staff_records", flat=True))
    assert recorded == {
        "portal.user",
        "consents.consent",
        "consents.consentreceipt",
        "privacy_requests.privacyrequest",
        "audit.auditevent",
        "account.emailaddress",
    }
    access_page = reverse("admin:audit_accessevent_change", args=[AccessEvent.objects.first().pk])
    assert agent_client.get(access_page).status_code == 200


def test_lists_across_consumers_stay_open(agent_client, consumer, other_consumer):
    _consent(consumer)
    _consent(other_consumer)
    before = _counts()
    assert agent_client.get(reverse("admin:consents_consent_changelist")).status_code == 200
    assert agent_client.get(reverse("admin:consents_consent_changelist") + "?q=example.com").status_code == 200
    assert agent_client.get(reverse("admin:portal_user_changelist") + f"?q={consumer.email}").status_code == 200
    assert _counts() == before


# --- What the consumer reads ------------------------------------------------------------------


def _opened_with_reason(consumer, *, code="support_request", reference="#4821"):
    staff = StaffFactory(email="desk@example.com")
    reason = staff_access_reason_state(staff=staff, consumer=consumer, code=code, reference=reference)
    access_event_record_staff(
        staff=staff, consumer=consumer, what="Opened in the admin", records="consents.consent", reason=reason
    )


def test_the_consumer_reads_what_staff_looked_at_and_why(consumer_client, consumer):
    _opened_with_reason(consumer)
    expected = "Customer support looked at your consents — your support request #4821"
    timeline = consumer_client.get(reverse("audit:access_timeline")).content.decode()
    assert expected in timeline
    activity = consumer_client.get(reverse("audit:activity"))
    assert expected in [entry.headline for entry in activity.context["entries"]]


def test_the_consumer_reads_it_in_chinese(consumer_client, consumer):
    _opened_with_reason(consumer, code="privacy_request", reference="0123abcd")
    consumer_client.cookies["django_language"] = "zh-hans"
    expected = "客服人员查看了您的同意记录 — 您的隐私请求 0123abcd"
    assert expected in consumer_client.get(reverse("audit:access_timeline")).content.decode()
    entries = consumer_client.get(reverse("audit:activity")).context["entries"]
    assert expected in [entry.headline for entry in entries]


def test_the_reference_is_shown_as_plain_text(consumer_client, consumer):
    _opened_with_reason(consumer, reference="#1<b>x</b>")
    for page in ("audit:access_timeline", "audit:activity"):
        html = consumer_client.get(reverse(page)).content.decode()
        assert "#1&lt;b&gt;x&lt;/b&gt;" in html
        assert "<b>x</b>" not in html


def test_another_consumer_never_sees_someone_elses_staff_access(client, consumer, other_consumer):
    _opened_with_reason(consumer, reference="#7cz")
    client.force_login(other_consumer)
    for page in ("audit:access", "audit:access_timeline", "audit:activity"):
        html = client.get(reverse(page)).content.decode()
        assert "#7cz" not in html
        assert "Customer support looked at" not in html


# --- Roles ------------------------------------------------------------------------------------

CONSUMER_PAGES = {
    "portal.view_user": "admin:portal_user_change",
    "consents.view_consent": "admin:consents_consent_change",
    "privacy_requests.view_privacyrequest": "admin:privacy_requests_privacyrequest_change",
    "audit.view_auditevent": "admin:audit_auditevent_change",
}


@pytest.mark.parametrize("role", [*ROLE_PERMISSIONS, "superuser"])
def test_each_role_states_a_reason_before_the_consumer_pages_it_may_open(role, client, consumer):
    if not Group.objects.filter(name__in=ROLE_PERMISSIONS).exists():
        staff_roles_ensure()
    member = _mfa(UserFactory(email="member@staff.example.com", is_staff=True, is_superuser=role == "superuser"))
    if role != "superuser":
        member.groups.add(Group.objects.get(name=role))
    client.force_login(member)
    consent = _consent(consumer)
    export = privacy_request_export_create(user=consumer, language="en")
    objects = {
        "admin:portal_user_change": consumer,
        "admin:consents_consent_change": consent,
        "admin:privacy_requests_privacyrequest_change": export,
        "admin:audit_auditevent_change": AuditEvent.objects.filter(subject=consumer).first(),
    }
    granted = ROLE_PERMISSIONS.get(role, tuple(CONSUMER_PAGES))
    may = {name: permission in granted for permission, name in CONSUMER_PAGES.items()}

    form = client.get(reverse(REASON_URL) + f"?consumer={consumer.pk}")
    assert form.status_code == (200 if any(may.values()) else 403)
    before = _counts()
    for name, obj in objects.items():
        response = client.get(reverse(name, args=[obj.pk]))
        assert response.status_code == (302 if may[name] else 403), name
        if may[name]:
            assert reverse(REASON_URL) in response["Location"]
    assert _counts() == before
    if not any(may.values()):
        return
    staff_reason_state(member, consumer)
    for name, obj in objects.items():
        assert client.get(reverse(name, args=[obj.pk])).status_code == (200 if may[name] else 403), name
    assert AccessEvent.objects.filter(user=consumer, staff_user=member, staff_reference="#4821").count() == sum(
        may.values()
    )


# --- The count for the operations dashboard ---------------------------------------------------


def test_staff_accesses_without_an_open_request_or_a_ticket_are_counted():
    alice, bob = UserFactory(email="alice@example.com"), UserFactory(email="bob@example.com")
    staff = StaffFactory(email="desk@example.com")
    start = datetime(2026, 3, 1, 9, tzinfo=UTC)

    def opened(consumer, at, code="", reference=""):
        with time_machine.travel(at, tick=False):
            reason = (
                staff_access_reason_state(staff=staff, consumer=consumer, code=code, reference=reference)
                if code
                else None
            )
            access_event_record_staff(staff=staff, consumer=consumer, what="x", records="portal.user", reason=reason)

    with time_machine.travel(start, tick=False):
        open_request = privacy_request_export_create(user=alice, language="en")
        closed_request = privacy_request_export_create(user=bob, language="en")
    PrivacyRequest.objects.filter(pk=closed_request.pk).update(
        status=RequestStatus.COMPLETED, completed_at=start + timedelta(days=2)
    )
    day = timedelta(days=1)
    opened(alice, start + day, "support_request", "#4821")  # justified by a ticket
    opened(alice, start + day, "fraud_investigation", "FR-77")  # justified by a ticket
    opened(alice, start + day, "privacy_request", open_request.pk.hex[:8])  # open request
    opened(bob, start + day, "privacy_request", str(closed_request.pk))  # still open then
    opened(bob, start + 3 * day, "privacy_request", str(closed_request.pk))  # completed by then
    opened(bob, start + day, "privacy_request", open_request.pk.hex[:8])  # alice's request, not bob's
    opened(alice, start - timedelta(hours=1), "privacy_request", open_request.pk.hex[:8])  # before it was made
    opened(alice, start + day)  # no reason at all
    opened(bob, start + day, "legal_request", "per letter")  # no ticket number
    opened(alice, start + 40 * day)  # outside the period: not counted

    counted = staff_access_justification(since=start - day, until=start + 30 * day)
    assert (counted.total, counted.without_ticket, counted.without_open_request) == (9, 2, 3)
    assert counted.unjustified == 5
    empty = staff_access_justification(since=start + 50 * day, until=start + 60 * day)
    assert (empty.total, empty.unjustified) == (0, 0)
