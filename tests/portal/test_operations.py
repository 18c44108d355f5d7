"""The operations dashboard and the partner scorecards: every figure against built data, who may see them, and
the audited suspension of a partner."""

import re
from datetime import UTC, date, datetime

import pytest
import time_machine
from allauth.mfa.totp.internal.auth import TOTP, generate_totp_secret
from django.apps import apps
from django.contrib.auth.models import Group
from django.test import Client
from django.urls import reverse

from audit.actions import AuditAction
from audit.models import AuditEvent
from audit.services import Actor
from consents.models import DeliveryAttempt, DeliveryStatus, EventType, OutboxEvent, Partner, PartnerStatus
from consents.services.access import AccessReport, access_events_ingest
from consents.services.consents import consent_grant, consent_revoke
from consents.services.partners import partner_resume, partner_subject_ensure, partner_suspend
from portal.operations.figures import Period, operations_overview, percentile
from portal.roles import AUDITOR, PARTNER_MANAGER, PRIVACY_OFFICER, ROLE_PERMISSIONS, SUPPORT_AGENT, staff_roles_ensure
from tests.factories import PartnerFactory, PrivacyRequestFactory, StaffFactory, UserFactory

NOW = datetime(2026, 4, 20, 12, 0, tzinfo=UTC)
PERIOD = Period(first=date(2026, 3, 2), last=date(2026, 3, 15))
QUERY = "?first=2026-03-02&last=2026-03-15"
DASHBOARD = "admin:operations_dashboard"


def at(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


@pytest.fixture(autouse=True)
def _org_time_zone(settings):
    settings.PRIVACY_REPORTS_TIME_ZONE = "UTC"


def _ingest(partner: Partner, user, when: str, purpose: str, categories: tuple[str, ...], event_id: str) -> None:
    subject = partner_subject_ensure(partner=partner, user=user)
    with time_machine.travel(at(when), tick=False):
        report = AccessReport(
            event_id=event_id,
            subject_id=subject.subject_id,
            purpose=purpose,
            categories=categories,
            accessed_at=at(when),
            action="read",
        )
        [result] = access_events_ingest(partner=partner, reports=[report])
    assert result.status == "created", result


def _revocation(user, partner: Partner) -> OutboxEvent:
    return OutboxEvent.objects.get(event_type=EventType.CONSENT_REVOKED, subject__user=user, partner=partner)


def _attempt(event: OutboxEvent, when: str, outcome: str) -> None:
    DeliveryAttempt.objects.create(event=event, attempted_at=at(when), outcome=outcome, status_code=200)


@pytest.fixture
def operations(consent_catalogue):
    """Two weeks of consents, withdrawals, acknowledgements, deliveries, accesses and requests (2 to 15 March 2026)."""
    offers, ads = consent_catalogue["offers"], consent_catalogue["ads"]
    adco, mailer, bureau = consent_catalogue["adco"], consent_catalogue["mailer"], consent_catalogue["bureau"]
    PartnerFactory(slug="quiet", name="Quiet Ltd")
    ana, ben, cy = (UserFactory(email=f"{name}@example.com") for name in ("ana", "ben", "cy"))
    steps = [
        ("2026-03-01T23:00:00", consent_grant, cy, ads),  # the day before the period
        ("2026-03-03T10:00:00", consent_grant, ana, offers),
        ("2026-03-09T12:00:00", consent_revoke, ana, offers),
        ("2026-03-10T09:00:00", consent_grant, ben, offers),
        ("2026-03-11T09:00:00", consent_revoke, ben, offers),
        ("2026-03-16T10:00:00", consent_revoke, cy, ads),  # the day after
    ]
    for when, action, user, purpose in steps:
        with time_machine.travel(at(when), tick=False):
            action(user=user, purpose=purpose, actor=Actor.consumer(user))
    # Acknowledgements: AdCo after 2 and 10 hours, Mailer after 100 hours and not at all.
    OutboxEvent.objects.filter(pk=_revocation(ana, adco).pk).update(acked_at=at("2026-03-09T14:00:00"))
    OutboxEvent.objects.filter(pk=_revocation(ben, adco).pk).update(acked_at=at("2026-03-11T19:00:00"))
    OutboxEvent.objects.filter(pk=_revocation(ana, mailer).pk).update(acked_at=at("2026-03-13T16:00:00"))
    OutboxEvent.objects.filter(pk=_revocation(ben, mailer).pk).update(status=DeliveryStatus.DEAD)
    # Deliveries: AdCo 3 delivered and 1 retried, Mailer 2 dead; one attempt after the period.
    _attempt(_revocation(ana, adco), "2026-03-09T12:00:30", "retry")
    _attempt(_revocation(ana, adco), "2026-03-09T12:01:00", "delivered")
    _attempt(_revocation(ben, adco), "2026-03-11T09:01:00", "delivered")
    _attempt(_revocation(ben, adco), "2026-03-12T09:01:00", "delivered")
    _attempt(_revocation(ana, mailer), "2026-03-09T12:01:00", "dead")
    _attempt(_revocation(ben, mailer), "2026-03-11T09:01:00", "dead")
    _attempt(_revocation(ben, adco), "2026-03-20T09:01:00", "delivered")
    Partner.objects.filter(pk=bureau.pk).update(webhook_disabled_at=at("2026-03-05T00:00:00"))
    # Accesses: AdCo 3 covered, 1 outside what was shared (week of 2 March), 1 without consent (week of
    # 9 March), and 1 more after the period; Mailer 2 covered.
    for n in range(3):
        _ingest(adco, ana, f"2026-03-04T1{n}:00:00", offers.slug, ("contact-details",), f"covered-{n}")
    _ingest(adco, ana, "2026-03-05T10:00:00", offers.slug, ("transactions",), "outside")
    _ingest(adco, ana, "2026-03-10T10:00:00", offers.slug, ("contact-details",), "no-consent")
    _ingest(adco, ana, "2026-03-20T10:00:00", offers.slug, ("contact-details",), "later")
    for n in range(2):
        _ingest(mailer, ana, f"2026-03-04T1{n}:00:00", offers.slug, ("contact-details",), f"mail-{n}")
    # Privacy requests: an export on time (3 days), one late (38 days), a deletion overdue now, one after.
    with time_machine.travel(at("2026-03-02T12:00:00"), tick=False):
        PrivacyRequestFactory(
            kind="export", jurisdiction="gdpr", status="completed", completed_at=at("2026-03-05T12:00:00")
        )
    with time_machine.travel(at("2026-03-03T12:00:00"), tick=False):
        PrivacyRequestFactory(
            kind="export",
            jurisdiction="gdpr",
            status="completed",
            due_at=at("2026-04-03T12:00:00"),
            completed_at=at("2026-04-10T12:00:00"),
        )
    with time_machine.travel(at("2026-03-04T12:00:00"), tick=False):
        PrivacyRequestFactory(kind="deletion", jurisdiction="ccpa")
    with time_machine.travel(at("2026-03-20T12:00:00"), tick=False):
        PrivacyRequestFactory(kind="export", jurisdiction="ccpa")
    return consent_catalogue


def test_percentile_is_the_nearest_rank():
    assert percentile([], 0.5) is None
    assert percentile([10.0], 0.95) == 10.0
    assert percentile([7200.0, 36000.0], 0.5) == 7200.0
    assert percentile([7200.0, 36000.0], 0.95) == 36000.0
    assert percentile([float(n) for n in range(1, 101)], 0.95) == 95.0


def test_every_figure_of_the_period(operations):
    with time_machine.travel(NOW, tick=False):
        overview = operations_overview(PERIOD)

    assert [(row.week, row.purpose.slug, row.grants, row.withdrawals) for row in overview.consent_weeks] == [
        (date(2026, 3, 2), "personalised-offers", 1, 0),
        (date(2026, 3, 9), "personalised-offers", 1, 2),
    ]
    partners = {row.partner.slug: row for row in overview.partners}
    assert list(partners) == ["adco", "bureau", "customer-support-staff", "mailer", "quiet"]
    adco, mailer, bureau, quiet = (partners[slug] for slug in ("adco", "mailer", "bureau", "quiet"))
    assert (adco.withdrawals, adco.acknowledged, adco.unacknowledged) == (2, 2, 0)
    assert (str(adco.latency_p50_hours), str(adco.latency_p95_hours), str(adco.ack_rate)) == ("2.0", "10.0", "100.0")
    assert (mailer.withdrawals, mailer.acknowledged, mailer.unacknowledged) == (2, 1, 1)
    assert (str(mailer.latency_p50_hours), str(mailer.latency_p95_hours), str(mailer.ack_rate)) == (
        "100.0",
        "100.0",
        "50.0",
    )
    assert (adco.attempts, adco.attempts_delivered, str(adco.webhook_success_rate)) == (4, 3, "75.0")
    assert (mailer.attempts, mailer.attempts_delivered, str(mailer.webhook_success_rate)) == (2, 0, "0.0")
    assert (adco.dead_letters, mailer.dead_letters) == (0, 1)
    assert (adco.accesses, adco.flagged, adco.no_consent, adco.outside_sharing) == (5, 2, 1, 1)
    assert str(adco.flagged_rate) == "40.0"
    assert adco.flagged_weeks == {date(2026, 3, 2): 1, date(2026, 3, 9): 1}
    assert (mailer.accesses, mailer.flagged, str(mailer.flagged_rate)) == (2, 0, "0.0")
    assert adco.last_contact == at("2026-03-11T19:00:00")
    assert mailer.last_contact == at("2026-03-13T16:00:00")
    assert bureau.ack_rate is None
    assert bureau.latency_p95_hours is None
    assert bureau.last_contact is None
    assert [row.partner.slug for row in overview.needs_review] == ["adco", "bureau", "mailer"]
    assert len(adco.review_reasons) == 2  # flagged rate and webhook success rate
    assert len(mailer.review_reasons) == 3  # acknowledgement rate, 95th percentile, webhook success rate
    assert len(bureau.review_reasons) == 1  # webhook disabled
    assert quiet.review_reasons == []
    assert not quiet.needs_review

    assert [(value, count) for value, _label, count in overview.deliveries.by_outcome] == [
        ("delivered", 3),
        ("retry", 1),
        ("gone", 0),
        ("dead", 2),
        ("refused", 0),
    ]
    assert overview.deliveries.dead_letters == 1
    assert [p.slug for p in overview.deliveries.webhooks_disabled] == ["bureau"]

    lines = [
        (
            line.kind,
            line.jurisdiction,
            line.received,
            line.completed_on_time,
            line.completed_late,
            line.overdue,
            str(line.median_days),
        )
        for line in overview.requests
    ]
    assert lines == [("export", "gdpr", 2, 1, 1, 0, "20.5"), ("deletion", "ccpa", 1, 0, 0, 1, "None")]


def test_review_thresholds_come_from_settings(operations, settings):
    settings.PARTNER_REVIEW_MAX_FLAGGED_RATE = 50
    settings.PARTNER_REVIEW_MIN_WEBHOOK_SUCCESS_RATE = 70
    with time_machine.travel(NOW, tick=False):
        overview = operations_overview(PERIOD)
    assert [row.partner.slug for row in overview.needs_review] == ["bureau", "mailer"]


def _admin(client: Client, role: str | None, email: str = "ops@staff.example.com") -> Client:
    """A client signed in as staff in ``role`` (None: superuser), with MFA."""
    user = UserFactory(email=email, is_staff=True, is_superuser=role is None)
    if role is not None:
        if not Group.objects.filter(name=role).exists():
            staff_roles_ensure()
        user.groups.add(Group.objects.get(name=role))
    TOTP.activate(user, generate_totp_secret())
    client.force_login(user)
    return client


def _row_cells(html: str, row_id: str) -> list[str]:
    row = re.search(rf'<tr id="{row_id}">(.*?)</tr>', html, re.S)
    assert row is not None, row_id
    return [
        re.sub(r"<[^>]+>|\s+", " ", cell).split() for cell in re.findall(r"<td[^>]*>(.*?)</td>", row.group(1), re.S)
    ]


def test_dashboard_page_draws_every_chart_and_its_table(operations, client):
    client = _admin(client, PRIVACY_OFFICER)
    with time_machine.travel(NOW, tick=False):
        response = client.get(reverse(DASHBOARD) + QUERY)
    assert response.status_code == 200
    html = response.content.decode()
    for chart in ("ops-consents", "ops-latency", "ops-deliveries", "ops-flagged", "ops-flagged-trend", "ops-requests"):
        assert f'id="{chart}-hatch"' in html, chart
    assert html.count('<svg class="ops-chart"') == 6
    assert html.count('<table class="report-table">\n    <caption>') == 6
    assert _row_cells(html, "ops-ack-mailer") == [["2"], ["1"], ["1"], ["100.0"], ["100.0"]]
    assert _row_cells(html, "ops-flagged-adco") == [["5"], ["2"], ["1"], ["1"]]
    assert _row_cells(html, "ops-outcome-dead") == [["2"]]
    assert _row_cells(html, "ops-requests-export-gdpr")[1:] == [["2"], ["1"], ["1"], ["0"], ["20.5"]]
    assert 'id="ops-needs-review"' in html
    assert reverse("admin:operations_scorecard", args=[operations["mailer"].pk]) in html


def test_dashboard_opens_on_the_last_twelve_weeks(operations, client):
    client = _admin(client, AUDITOR)
    with time_machine.travel(at("2026-03-15T20:00:00"), tick=False):
        response = client.get(reverse(DASHBOARD))
    assert response.context["overview"].period == Period(first=date(2025, 12, 22), last=date(2026, 3, 15))


@pytest.mark.parametrize(
    ("query", "field"),
    [
        ("?first=2026-03-10&last=2026-03-02", "first"),
        ("?first=2026-03-01&last=2026-04-21", "last"),
        ("?first=2025-01-01&last=2026-03-01", "first"),
        ("?first=yesterday&last=2026-03-01", "first"),
    ],
)
def test_dashboard_refuses_a_bad_period_with_a_form_error(operations, client, query, field):
    client = _admin(client, PRIVACY_OFFICER)
    with time_machine.travel(NOW, tick=False):
        response = client.get(reverse(DASHBOARD) + query)
    assert response.status_code == 200
    assert response.context["overview"] is None
    assert list(response.context["form"].errors) == [field]
    assert 'class="errorlist' in response.content.decode()


def test_dashboard_query_count_does_not_grow_with_the_data(
    operations, client, django_assert_num_queries, django_assert_max_num_queries
):
    with time_machine.travel(NOW, tick=False), django_assert_num_queries(12):
        operations_overview(PERIOD)
    client = _admin(client, PRIVACY_OFFICER)
    with time_machine.travel(NOW, tick=False), django_assert_max_num_queries(100) as small:
        client.get(reverse(DASHBOARD) + QUERY)
    # Ten times the accesses, more partners, withdrawals, attempts and requests.
    adco, offers = operations["adco"], operations["offers"]
    more = UserFactory(email="more@example.com")
    with time_machine.travel(at("2026-03-06T08:00:00"), tick=False):
        consent_grant(user=more, purpose=offers, actor=Actor.consumer(more))
    for n in range(50):
        _ingest(adco, more, f"2026-03-07T{n % 24:02d}:{n:02d}:00", offers.slug, ("contact-details",), f"more-{n}")
    for n in range(3):
        PartnerFactory(slug=f"extra-{n}")
        with time_machine.travel(at(f"2026-03-0{n + 5}T12:00:00"), tick=False):
            PrivacyRequestFactory(kind="deletion", jurisdiction="gdpr")
    with time_machine.travel(NOW, tick=False), django_assert_num_queries(len(small.captured_queries)):
        client.get(reverse(DASHBOARD) + QUERY)


def _snapshot() -> dict[str, list[str]]:
    return {
        model._meta.label: sorted(repr(row) for row in model._default_manager.values_list())
        for model in apps.get_models()
        if model._meta.label != "sessions.Session" and model._meta.managed
    }


SEES_DASHBOARD = {PRIVACY_OFFICER, AUDITOR, "superuser"}
SEES_SCORECARD = {PRIVACY_OFFICER, AUDITOR, PARTNER_MANAGER, "superuser"}


@pytest.mark.parametrize(
    "role", [PRIVACY_OFFICER, AUDITOR, SUPPORT_AGENT, PARTNER_MANAGER, "superuser", "no role", "consumer", "anonymous"]
)
def test_who_opens_the_dashboard_and_scorecards(operations, client, role):
    if role == "consumer":
        client.force_login(UserFactory(email="nosy@example.com"))
    elif role == "no role":
        user = UserFactory(email="staff@staff.example.com", is_staff=True)
        TOTP.activate(user, generate_totp_secret())
        client.force_login(user)
    elif role != "anonymous":
        _admin(client, None if role == "superuser" else role)
    scorecard = reverse("admin:operations_scorecard", args=[operations["adco"].pk])
    before = _snapshot()

    with time_machine.travel(NOW, tick=False):
        dashboard, card = client.get(reverse(DASHBOARD) + QUERY), client.get(scorecard + QUERY)
        index = client.get(reverse("admin:index"))

    let_in = role not in ("consumer", "anonymous")
    if not let_in:
        assert [dashboard.status_code, card.status_code] == [302, 302]
        assert dashboard["Location"].startswith(reverse("admin:login"))
    else:
        assert dashboard.status_code == (200 if role in SEES_DASHBOARD else 403)
        assert card.status_code == (200 if role in SEES_SCORECARD else 403)
        assert (b'id="operations"' in index.content) == (role in SEES_DASHBOARD)
    assert _snapshot() == before


def test_the_dashboard_permission_is_no_one_elses():
    holders = {
        role for role, permissions in ROLE_PERMISSIONS.items() if "audit.view_operations_dashboard" in permissions
    }
    assert holders == {PRIVACY_OFFICER, AUDITOR}


@pytest.mark.parametrize("role", [PRIVACY_OFFICER, AUDITOR, SUPPORT_AGENT, "no role", "consumer", "anonymous"])
def test_only_those_who_change_partners_suspend_one(operations, client, role):
    if role == "consumer":
        client.force_login(UserFactory(email="nosy@example.com"))
    elif role == "no role":
        user = UserFactory(email="staff@staff.example.com", is_staff=True)
        TOTP.activate(user, generate_totp_secret())
        client.force_login(user)
    elif role != "anonymous":
        _admin(client, role)
    url = reverse("admin:operations_partner_status", args=[operations["adco"].pk])
    before = _snapshot()

    response = client.post(url, {"action": "suspend", "reason": "Ignores withdrawals"})

    assert response.status_code == (302 if role in ("consumer", "anonymous") else 403)
    assert _snapshot() == before


def test_suspend_and_resume_from_the_scorecard_are_audited_with_the_reason(operations, client):
    client = _admin(client, PARTNER_MANAGER)
    adco = operations["adco"]
    url = reverse("admin:operations_partner_status", args=[adco.pk])
    scorecard = reverse("admin:operations_scorecard", args=[adco.pk])

    assert client.get(url).status_code == 405
    refused = client.post(url, {"action": "suspend", "reason": "  "})
    assert refused.status_code == 400
    assert "reason" in refused.context["status_form"].errors
    adco.refresh_from_db()
    assert adco.status == PartnerStatus.ACTIVE
    assert not AuditEvent.objects.filter(action=AuditAction.PARTNER_SUSPENDED).exists()

    response = client.post(url, {"action": "suspend", "reason": "Ignores withdrawals for a week"})
    assert response.status_code == 302
    assert response["Location"] == scorecard
    adco.refresh_from_db()
    assert adco.status == PartnerStatus.SUSPENDED
    client.post(url, {"action": "resume", "reason": "Fixed their consumer of our webhooks"})
    adco.refresh_from_db()
    assert adco.status == PartnerStatus.ACTIVE

    events = list(AuditEvent.objects.filter(target_type="consents.partner", target_id=str(adco.pk)).order_by("seq"))
    assert [(e.action, e.actor_kind, e.data["partner"], e.note.text) for e in events] == [
        (AuditAction.PARTNER_SUSPENDED, "staff", "adco", "Ignores withdrawals for a week"),
        (AuditAction.PARTNER_RESUMED, "staff", "adco", "Fixed their consumer of our webhooks"),
    ]
    page = client.get(scorecard + QUERY).content.decode()
    assert "Ignores withdrawals for a week" in page
    assert "Fixed their consumer of our webhooks" in page


def test_suspending_twice_records_once(operations):
    adco = operations["adco"]
    actor = Actor.system("test")
    partner_suspend(partner=adco, reason="First", actor=actor)
    partner_suspend(partner=adco, reason="Second", actor=actor)
    partner_resume(partner=adco, reason="Back", actor=actor)
    partner_resume(partner=adco, reason="Again", actor=actor)
    actions = AuditEvent.objects.filter(target_id=str(adco.pk), target_type="consents.partner").values_list(
        "action", flat=True
    )
    assert sorted(actions) == sorted([AuditAction.PARTNER_SUSPENDED, AuditAction.PARTNER_RESUMED])


def test_partner_admin_links_the_scorecard_and_no_longer_edits_the_status(operations, client):
    client = _admin(client, PARTNER_MANAGER)
    adco = operations["adco"]
    page = client.get(reverse("admin:consents_partner_change", args=[adco.pk])).content.decode()
    assert reverse("admin:operations_scorecard", args=[adco.pk]) in page
    assert 'name="status"' not in page


def test_scorecard_shows_the_partners_figures(operations, client):
    client = _admin(client, AUDITOR)
    with time_machine.travel(NOW, tick=False):
        response = client.get(reverse("admin:operations_scorecard", args=[operations["mailer"].pk]) + QUERY)
    html = response.content.decode()
    assert _row_cells(html, "scorecard-ack-rate") == [["50.0%"], ["1", "of", "2"]]
    assert _row_cells(html, "scorecard-latency")[0] == ["100.0", "/", "100.0"]
    assert _row_cells(html, "scorecard-webhook-rate") == [["0.0%"], ["0", "of", "2"]]
    assert _row_cells(html, "scorecard-dead-letters")[0] == ["1"]
    assert 'id="scorecard-needs-review"' in html
    assert 'id="partner-status-form"' not in html, "auditors do not change partners"


def test_dashboard_counts_staff_openings_not_backed_by_a_ticket_or_an_open_request(operations, client):
    from audit.access import access_event_record_staff
    from audit.staff_access import staff_access_reason_state

    consumer = UserFactory(email="opened@example.com")
    desk = StaffFactory(email="desk@staff.example.com")
    with time_machine.travel(at("2026-03-04T10:00:00"), tick=False):
        ticket = staff_access_reason_state(staff=desk, consumer=consumer, code="support_request", reference="#4821")
        access_event_record_staff(staff=desk, consumer=consumer, what="x", records="portal.user", reason=ticket)
        access_event_record_staff(staff=desk, consumer=consumer, what="x", records="portal.user", reason=None)
    with time_machine.travel(at("2026-03-20T10:00:00"), tick=False):  # after the period
        access_event_record_staff(staff=desk, consumer=consumer, what="x", records="portal.user", reason=None)

    with time_machine.travel(NOW, tick=False):
        response = _admin(client, PRIVACY_OFFICER).get(reverse(DASHBOARD) + QUERY)

    figures = response.context["overview"].staff_access
    assert (figures.total, figures.without_ticket, figures.without_open_request) == (2, 1, 0)
    row = re.search(r'<tr id="ops-staff-access-row">(.*?)</tr>', response.content.decode()).group(1)
    assert re.findall(r'<td class="number">(\d+)</td>', row) == ["2", "1", "0", "1"]
