from datetime import timedelta

import pytest
import time_machine
from allauth.mfa.totp.internal.auth import TOTP, generate_totp_secret
from django.contrib.admin.helpers import ACTION_CHECKBOX_NAME
from django.core import mail
from django.urls import reverse
from django.utils import timezone

from audit.models import AuditEvent
from portal.models import User
from privacy_requests.models import PartnerTaskState, PrivacyRequest, RequestStatus
from privacy_requests.services.deletion import privacy_request_deletion_execute
from privacy_requests.services.requests import privacy_request_deletion_create, privacy_request_export_create
from tests.factories import StaffFactory, UserFactory, staff_reason_state
from tests.privacy_requests.helpers import consumer_data_seed

CHANGELIST = "admin:privacy_requests_privacyrequest_changelist"


@pytest.fixture
def staff_client(client, db):
    staff = StaffFactory(email="dpo@example.com")
    TOTP.activate(staff, generate_totp_secret())
    client.force_login(staff)
    return client


def _requests() -> tuple[PrivacyRequest, PrivacyRequest]:
    with time_machine.travel(timezone.now() - timedelta(days=40)):
        overdue = privacy_request_export_create(user=UserFactory(email="late@example.com"), language="en")
    recent = privacy_request_deletion_create(
        user=UserFactory(email="recent@example.com", jurisdiction="ccpa"), language="en"
    )
    return overdue, recent


def test_queue_is_ordered_by_due_date_and_marks_overdue_requests(staff_client):
    overdue, recent = _requests()
    response = staff_client.get(reverse(CHANGELIST))
    assert response.status_code == 200
    body = response.content.decode()
    assert body.index(str(overdue.pk)[:8]) < body.index(str(recent.pk)[:8])
    assert 'class="request-overdue"' in body
    assert body.count("⚠ Overdue by") == 1


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ({"kind__exact": "export"}, "overdue"),
        ({"kind__exact": "deletion"}, "recent"),
        ({"status__exact": "received"}, "both"),
        ({"due": "overdue"}, "overdue"),
        ({"due": "month"}, "none"),
        ({"due": "later"}, "recent"),
    ],
)
def test_queue_filters_by_kind_status_and_due_date(staff_client, query, expected):
    overdue, recent = _requests()
    shown = {r.pk for r in staff_client.get(reverse(CHANGELIST), query).context["cl"].result_list}
    assert (
        shown
        == {
            "overdue": {overdue.pk},
            "recent": {recent.pk},
            "both": {overdue.pk, recent.pk},
            "none": set(),
        }[expected]
    )


def test_extend_action_asks_for_a_reason_then_extends_and_emails_the_consumer(
    staff_client, django_capture_on_commit_callbacks
):
    overdue, _recent = _requests()
    due_before = overdue.due_at
    form = staff_client.post(reverse(CHANGELIST), {"action": "extend", ACTION_CHECKBOX_NAME: [overdue.pk]})
    assert form.status_code == 200
    assert 'name="reason"' in form.content.decode()

    missing_reason = staff_client.post(
        reverse(CHANGELIST),
        {"action": "extend", ACTION_CHECKBOX_NAME: [overdue.pk], "apply": "1", "months": 1, "days": 0, "reason": ""},
    )
    assert missing_reason.status_code == 200
    overdue.refresh_from_db()
    assert overdue.due_at == due_before

    with django_capture_on_commit_callbacks(execute=True):
        done = staff_client.post(
            reverse(CHANGELIST),
            {
                "action": "extend",
                ACTION_CHECKBOX_NAME: [overdue.pk],
                "apply": "1",
                "months": 1,
                "days": 0,
                "reason": "Three partners hold your data.",
            },
            follow=True,
        )
    overdue.refresh_from_db()
    assert overdue.due_at > due_before
    assert overdue.extensions.get().reason == "Three partners hold your data."
    assert "the consumer was emailed" in done.content.decode()
    assert mail.outbox[-1].to == ["late@example.com"]
    assert "Three partners hold your data." in mail.outbox[-1].body
    assert AuditEvent.objects.filter(action="privacy_request.extended", actor_kind="staff").exists()


def test_extend_beyond_the_law_is_refused_in_the_admin(staff_client):
    _overdue, recent = _requests()
    response = staff_client.post(
        reverse(CHANGELIST),
        {"action": "extend", ACTION_CHECKBOX_NAME: [recent.pk], "apply": "1", "months": 2, "days": 0, "reason": "x"},
        follow=True,
    )
    assert "at most 0 months and 45 days" in response.content.decode()
    assert not recent.extensions.exists()


def test_reject_action_needs_a_reason_and_emails_the_consumer(staff_client, django_capture_on_commit_callbacks):
    _overdue, recent = _requests()
    with django_capture_on_commit_callbacks(execute=True):
        staff_client.post(
            reverse(CHANGELIST),
            {"action": "reject", ACTION_CHECKBOX_NAME: [recent.pk], "apply": "1", "reason": "We could not verify it."},
        )
    recent.refresh_from_db()
    assert recent.status == RequestStatus.REJECTED
    assert recent.rejection_reason == "We could not verify it."
    assert mail.outbox[-1].to == ["recent@example.com"]
    assert mail.outbox[-1].subject == "We cannot carry out your privacy request"


def test_record_acknowledgement_received_by_other_means_completes_the_request(
    staff_client, django_capture_on_commit_callbacks
):
    consumer = UserFactory(email="leaving@example.com")
    consumer_data_seed(consumer)
    staff_reason_state(User.objects.get(email="dpo@example.com"), consumer)
    request = privacy_request_deletion_create(user=consumer, language="en")
    with time_machine.travel(request.grace_ends_at + timedelta(minutes=1)):
        privacy_request_deletion_execute(request_id=request.pk)
    first, second = request.partner_tasks.order_by("partner__name")
    changelist = reverse("admin:privacy_requests_privacyrequestpartnertask_changelist")

    def record(task, note):
        with django_capture_on_commit_callbacks(execute=True):
            staff_client.post(
                changelist,
                {"action": "record_acknowledgement", ACTION_CHECKBOX_NAME: [task.pk], "apply": "1", "note": note},
            )

    record(first, "Signed letter from their DPO, ref 2027-14")
    request.refresh_from_db()
    assert request.status == RequestStatus.WAITING_PARTNERS
    first.refresh_from_db()
    assert first.staff_note == "Signed letter from their DPO, ref 2027-14"
    change = staff_client.get(reverse("admin:privacy_requests_privacyrequest_change", args=[request.pk]))
    assert "Signed letter from their DPO" in change.content.decode(), "shown while the deletion is open"

    record(second, "Phone call with their privacy team")
    request.refresh_from_db()
    assert request.status == RequestStatus.COMPLETED
    assert {t.state for t in request.partner_tasks.all()} == {PartnerTaskState.RECORDED}
    assert mail.outbox[-1].to == ["leaving@example.com"]
    # The notes go with the account; who recorded what and when stays.
    assert set(request.partner_tasks.values_list("staff_note", "recorded_by")) == {("", first.recorded_by_id)}
    page = staff_client.get(reverse("admin:privacy_requests_privacyrequest_change", args=[request.pk])).content.decode()
    assert "Signed letter from their DPO" not in page
    assert "Phone call with their privacy team" not in page
    assert page.count("removed on account deletion") == 4, "partner detail and staff note of both tasks"


def test_consumers_and_staff_without_mfa_cannot_reach_the_queue(client, consumer):
    client.force_login(consumer)
    assert client.get(reverse(CHANGELIST)).status_code == 302
    client.force_login(StaffFactory(email="nomfa@example.com"))
    assert client.get(reverse(CHANGELIST)).status_code == 302


def test_requests_cannot_be_added_or_deleted_in_the_admin(staff_client):
    _overdue, recent = _requests()
    assert staff_client.get(reverse("admin:privacy_requests_privacyrequest_add")).status_code == 403
    assert (
        staff_client.get(reverse("admin:privacy_requests_privacyrequest_delete", args=[recent.pk])).status_code == 403
    )


def test_bookmarks_of_the_queue_under_the_portal_app_lead_to_its_new_address(staff_client):
    # The queue moved from /admin/portal/ to /admin/privacy_requests/ with its models.
    _overdue, recent = _requests()
    staff_reason_state(User.objects.get(email="dpo@example.com"), recent.user)
    moved = {
        f"/admin/portal/privacyrequest/{recent.pk}/change/": reverse(
            "admin:privacy_requests_privacyrequest_change", args=[recent.pk]
        ),
        "/admin/portal/privacyrequest/?status__exact=received": f"{reverse(CHANGELIST)}?status__exact=received",
        "/admin/portal/privacyrequestpartnertask/": reverse(
            "admin:privacy_requests_privacyrequestpartnertask_changelist"
        ),
        "/admin/portal/consentproof/": reverse("admin:privacy_requests_consentproof_changelist"),
    }

    for old, new in moved.items():
        response = staff_client.get(old)
        assert (response.status_code, response["Location"]) == (301, new)
        assert staff_client.get(new).status_code == 200
    assert staff_client.get(reverse("admin:portal_user_changelist")).status_code == 200
