"""The regulator reports: every figure of the CCPA metrics and every row of the Art. 30 record, in each format.

The organisation's time zone is Los Angeles, so requests received on New Year's Eve evening (already
1 January in UTC) count in the old year and days are counted on Californian calendars.
"""

import csv
import io
import json
import re
from datetime import UTC, date, datetime
from importlib import import_module

import pytest
import time_machine
from allauth.mfa.totp.internal.auth import TOTP, generate_totp_secret
from django.apps import apps
from django.contrib.auth.models import Group
from django.test import Client
from django.urls import reverse

from audit.services import Actor
from consents.models import Sharing
from consents.services.consents import consent_grant, consent_revoke, gpc_signal_honour
from consents.services.notices import purpose_version_publish
from portal.roles import AUDITOR, PARTNER_MANAGER, PRIVACY_OFFICER, SUPPORT_AGENT, staff_roles_ensure
from privacy_requests.models import PrivacyRequest
from privacy_requests.reports.ccpa import CSV_COLUMNS, ccpa_metrics, ccpa_metrics_csv
from privacy_requests.reports.processing import processing_record, processing_record_csv, processing_record_json
from tests.factories import (
    DataCategoryFactory,
    PartnerFactory,
    PrivacyRequestFactory,
    PurposeFactory,
    UserFactory,
    notice_translations,
)

TZ = "America/Los_Angeles"
# When the reports are made: after every request of 2025 has had its answer.
REPORT_AT = datetime(2026, 3, 1, 20, 0, tzinfo=UTC)
CCPA_URL = "admin:privacy_requests_report_ccpa"
PROCESSING_URL = "admin:privacy_requests_report_processing"


def at(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


@pytest.fixture(autouse=True)
def _org_time_zone(settings):
    settings.PRIVACY_REPORTS_TIME_ZONE = TZ


def _request(kind: str, received: str, *steps: tuple[str, str], jurisdiction: str = "ccpa") -> PrivacyRequest:
    """A request received at ``received`` (UTC), then moved through ``(status, when)`` steps as the services do."""
    with time_machine.travel(at(received), tick=False):
        request = PrivacyRequestFactory(kind=kind, jurisdiction=jurisdiction)
    for status, when in steps:
        with time_machine.travel(at(when), tick=False):
            request.status = status
            moment = at(when)
            match status:
                case "completed":
                    request.completed_at = moment
                case "rejected":
                    request.rejected_at, request.rejection_reason = moment, "Could not verify the requester"
                case "cancelled":
                    request.cancelled_at = moment
            request.updated_at = moment
            request.save()
    return request


@pytest.fixture
def year_of_requests(db):
    # Requests to know (exports).
    _request("export", "2025-01-01T07:30:00", ("completed", "2025-01-05T18:00:00"))  # 31 Dec 2024 in LA: not 2025
    _request("export", "2025-01-01T08:30:00", ("completed", "2025-01-11T07:00:00"))  # LA 1 Jan → 10 Jan: 9 days
    _request("export", "2026-01-01T07:00:00", ("completed", "2026-01-20T20:00:00"))  # LA 31 Dec → 20 Jan: 20 days
    _request("export", "2026-01-01T08:30:00")  # 1 Jan 2026 in LA: not 2025
    _request(
        "export", "2025-03-10T18:00:00", ("processing", "2025-03-10T18:01:00"), ("rejected", "2025-03-12T18:00:00")
    )
    _request("export", "2025-06-01T17:00:00", ("processing", "2025-06-01T17:01:00"))  # still open
    _request("export", "2025-07-01T17:00:00", ("completed", "2025-07-04T17:00:00"), jurisdiction="gdpr")  # 3 days
    # Requests to delete.
    _request("deletion", "2025-02-01T20:00:00", ("waiting_partners", "2025-02-09T20:00:00"))  # in part: 8 days
    _request(
        "deletion",
        "2025-04-01T20:00:00",
        ("processing", "2025-04-08T20:00:00"),
        ("waiting_partners", "2025-04-09T20:00:00"),
        ("completed", "2025-05-01T20:00:00"),
    )  # in whole: 30 days
    _request("deletion", "2025-05-01T20:00:00", ("cancelled", "2025-05-03T20:00:00"))  # withdrawn
    _request("deletion", "2025-08-01T20:00:00", ("rejected", "2025-08-15T20:00:00"))  # denied: 14 days
    _request("deletion", "2025-12-20T20:00:00")  # in its grace period: open
    _request("deletion", "2025-12-15T20:00:00", ("completed", "2025-12-30T20:00:00"), jurisdiction="other")  # 15
    # Requests to opt out of sale/sharing.
    ads = PurposeFactory(slug="ads", name="Targeted ads", gpc_covered=True)
    newsletter = PurposeFactory(slug="newsletter", name="Newsletter")
    californian = UserFactory(email="ca@example.com", jurisdiction="ccpa")
    european = UserFactory(email="eu@example.com", jurisdiction="gdpr")
    late = UserFactory(email="late@example.com", jurisdiction="ccpa")
    early = UserFactory(email="early@example.com", jurisdiction="ccpa")
    with time_machine.travel(at("2025-09-01T17:00:00"), tick=False):
        gpc_signal_honour(user=californian)  # refuses "ads" with method gpc: one request, not two
        gpc_signal_honour(user=european)
    with time_machine.travel(at("2026-01-01T07:30:00"), tick=False):  # 31 Dec in LA
        gpc_signal_honour(user=late)
    with time_machine.travel(at("2025-01-01T07:30:00"), tick=False):  # 31 Dec 2024 in LA
        gpc_signal_honour(user=early)
    chooser = UserFactory(email="chooser@example.com", jurisdiction="ccpa")
    for day, action in (("01", consent_grant), ("02", consent_revoke), ("03", consent_grant), ("04", consent_revoke)):
        with time_machine.travel(at(f"2025-10-{day}T17:00:00"), tick=False):
            action(user=chooser, purpose=ads, actor=Actor.consumer(chooser))
            action(user=chooser, purpose=newsletter, actor=Actor.consumer(chooser))  # not sale/sharing


KNOW_SOURCE = "Requests for a copy of the consumer's data (exports)."


def _expected_lines(scope: str) -> dict[str, list[str]]:
    """received, complied in whole or part, in whole, in part, denied, withdrawn, open, median, mean."""
    if scope == "california":
        know = ["4", "2", "2", "0", "1", "0", "1", "9.0", "10.3"]  # days 9, 20, 2
        delete = ["5", "2", "1", "1", "1", "1", "1", "14.0", "17.3"]  # days 8, 30, 14
        opt_out = ["4", "4", "4", "0", "0", "0", "0", "0.0", "0.0"]  # 2 signals, 2 withdrawals
    else:
        know = ["5", "3", "3", "0", "1", "0", "1", "6.0", "8.5"]  # days 9, 20, 2, 3
        delete = ["6", "3", "2", "1", "1", "1", "1", "14.5", "16.8"]  # days 8, 30, 14, 15
        opt_out = ["5", "5", "5", "0", "0", "0", "0", "0.0", "0.0"]  # and the European's signal
    return {"know": know, "delete": delete, "correct": [""] * 9, "opt_out": opt_out, "limit": [""] * 9}


@pytest.mark.parametrize("scope", ["california", "all"])
def test_ccpa_csv_has_every_figure_of_the_year(year_of_requests, scope):
    with time_machine.travel(REPORT_AT, tick=False):
        rows = list(csv.reader(io.StringIO(ccpa_metrics_csv(ccpa_metrics(year=2025, scope=scope)))))

    assert rows[0] == list(CSV_COLUMNS)
    assert [row[:6] for row in rows[1:]] == [
        ["2025", scope, TZ, "know", "Requests to know", "yes"],
        ["2025", scope, TZ, "delete", "Requests to delete", "yes"],
        ["2025", scope, TZ, "correct", "Requests to correct", "no"],
        ["2025", scope, TZ, "opt_out", "Requests to opt out of sale/sharing", "yes"],
        ["2025", scope, TZ, "limit", "Requests to limit", "no"],
    ]
    expected = _expected_lines(scope)
    assert {row[3]: row[6:15] for row in rows[1:]} == expected
    assert rows[1][15] == KNOW_SOURCE
    assert rows[3][15].startswith("Not offered as a request")


def test_ccpa_years_around_the_boundary_get_the_requests_across_it(year_of_requests):
    with time_machine.travel(REPORT_AT, tick=False):
        lines_2024 = {line.key: line for line in ccpa_metrics(year=2024).lines}
        lines_2026 = {line.key: line for line in ccpa_metrics(year=2026).lines}

    assert (lines_2024["know"].received, lines_2024["know"].complied, lines_2024["know"].days) == (1, 1, [5])
    assert (lines_2024["opt_out"].received, lines_2024["delete"].received) == (1, 0)
    assert (lines_2026["know"].received, lines_2026["know"].pending, lines_2026["know"].days) == (1, 1, [])
    assert lines_2026["know"].median_days is None
    assert lines_2026["know"].mean_days is None
    assert lines_2026["opt_out"].received == 0


def _admin(client: Client, role: str | None) -> Client:
    """A client signed in as staff in ``role`` (None: superuser), with MFA."""
    user = UserFactory(email="reports@staff.example.com", is_staff=True, is_superuser=role is None)
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
    return [re.sub(r"\s+", " ", cell).strip() for cell in re.findall(r"<td[^>]*>(.*?)</td>", row.group(1), re.S)]


@pytest.mark.parametrize("scope", ["california", "all"])
def test_ccpa_page_shows_every_figure_and_downloads_the_same_csv(year_of_requests, client, scope):
    client = _admin(client, PRIVACY_OFFICER)
    with time_machine.travel(REPORT_AT, tick=False):
        page = client.get(reverse(CCPA_URL), {"year": 2025, "scope": scope})
        download = client.get(reverse(CCPA_URL), {"year": 2025, "scope": scope, "format": "csv"})
        direct = ccpa_metrics_csv(ccpa_metrics(year=2025, scope=scope))

    html = page.content.decode()
    assert page.status_code == 200
    for key, figures in _expected_lines(scope).items():
        cells = _row_cells(html, f"ccpa-{key}")
        assert cells == (["Not offered"] if key in ("correct", "limit") else figures), key
    assert download.status_code == 200
    assert download["Content-Type"] == "text/csv"
    assert download["Content-Disposition"] == f'attachment; filename="ccpa-metrics-2025-{scope}.csv"'
    assert download.content.decode() == direct


def test_ccpa_page_opens_on_the_previous_year_in_the_org_time_zone(db, client):
    client = _admin(client, AUDITOR)
    # 1 January 2026 in UTC is still 31 December 2025 in Los Angeles: the previous year is 2024.
    with time_machine.travel(at("2026-01-01T05:00:00"), tick=False):
        page = client.get(reverse(CCPA_URL))
        future = client.get(reverse(CCPA_URL), {"year": 2026})

    assert page.context["report"].year == 2024
    assert future.status_code == 200
    assert future.context["report"] is None
    assert "year" in future.context["form"].errors


# Record of processing ----------------------------------------------------------------------


@pytest.fixture
def catalogue_history(db):
    """A catalogue that changes during 2025: a new notice, a moved partner, a renamed category, an ended sharing."""
    # Created when the test database was, at no date this test controls; the conftest puts it back.
    import_module("consents.migrations.0005_staff_access_recipient").staff_recipient_remove(apps, None)
    actor = Actor.system("tests")
    with time_machine.travel(at("2025-01-10T17:00:00"), tick=False):
        contact = DataCategoryFactory(slug="contact", name="Contact details")
        payments = DataCategoryFactory(slug="payments", name="Transactions")
        browsing = DataCategoryFactory(slug="browsing", name="=Browsing behaviour")  # formula-like on purpose
        marketing = PurposeFactory(
            slug="marketing",
            name="Marketing",
            category="marketing",
            gpc_covered=True,
            notice__retention="Two years",
            notice__categories=[contact, browsing],
        )
        PurposeFactory(
            slug="billing",
            name="Billing",
            legal_basis="contract",
            notice__retention="Ten years",
            notice__categories=[payments],
        )
        adco = PartnerFactory(slug="adco", name="Ad Co", kind="advertiser", country="US")
        mailer = PartnerFactory(slug="mailer", name="Mailer", kind="service_provider", country="DE")
        Sharing.objects.create(partner=adco, purpose=marketing).data_categories.set([contact, browsing])
        Sharing.objects.create(partner=mailer, purpose=marketing).data_categories.set([contact])
    # 23:30 on 31 May in Los Angeles (already 1 June in UTC).
    with time_machine.travel(at("2025-06-01T06:30:00"), tick=False):
        purpose_version_publish(
            purpose=marketing,
            description="Offers by email only.",
            retention="One year",
            data_categories=[contact],
            material=True,
            change_summary="No more browsing data",
            actor=actor,
            translations=notice_translations(
                description="Offers by email only.",
                retention="One year",
                change_summary="No more browsing data",
            ),
        )
        Sharing.objects.get(partner=adco).data_categories.set([contact])
        adco.country = "IE"
        adco.save()
        contact.name = "Contact information"
        contact.save()
    with time_machine.travel(at("2025-09-01T17:00:00"), tick=False):
        sharing = Sharing.objects.get(partner=mailer)
        sharing.is_active = False
        sharing.save()
        PurposeFactory(slug="research", name="Research", notice__retention="Six months", notice__categories=[browsing])
    return {"adco": adco, "mailer": mailer}


BILLING = ["billing", "Billing", "", "contract", "no", "1", "2025-01-10T17:00:00Z", "Transactions", "Ten years"]
NO_RECIPIENT = ["", "", "", "", "", ""]


def _expected_record(as_of: str) -> list[list[str]]:
    first = ["marketing", "Marketing", "marketing", "consent", "yes", "1", "2025-01-10T17:00:00Z"]
    second = ["marketing", "Marketing", "marketing", "consent", "yes", "2", "2025-06-01T06:30:00Z"]
    match as_of:
        case "2025-05-30":
            return [
                [as_of, *BILLING, *NO_RECIPIENT],
                [
                    as_of,
                    *first,
                    "'=Browsing behaviour; Contact details",
                    "Two years",
                    "adco",
                    "Ad Co",
                    "advertiser",
                    "US",
                    "active",
                    "'=Browsing behaviour; Contact details",
                ],
                [
                    as_of,
                    *first,
                    "'=Browsing behaviour; Contact details",
                    "Two years",
                    "mailer",
                    "Mailer",
                    "service_provider",
                    "DE",
                    "active",
                    "Contact details",
                ],
            ]
        case "2025-05-31":
            return [
                [as_of, *BILLING, *NO_RECIPIENT],
                [
                    as_of,
                    *second,
                    "Contact information",
                    "One year",
                    "adco",
                    "Ad Co",
                    "advertiser",
                    "IE",
                    "active",
                    "Contact information",
                ],
                [
                    as_of,
                    *second,
                    "Contact information",
                    "One year",
                    "mailer",
                    "Mailer",
                    "service_provider",
                    "DE",
                    "active",
                    "Contact information",
                ],
            ]
        case "2025-12-31":
            return [
                [as_of, *BILLING, *NO_RECIPIENT],
                [
                    as_of,
                    *second,
                    "Contact information",
                    "One year",
                    "adco",
                    "Ad Co",
                    "advertiser",
                    "IE",
                    "active",
                    "Contact information",
                ],
                [
                    as_of,
                    "research",
                    "Research",
                    "",
                    "consent",
                    "no",
                    "1",
                    "2025-09-01T17:00:00Z",
                    "'=Browsing behaviour",
                    "Six months",
                    *NO_RECIPIENT,
                ],
            ]
    raise AssertionError(as_of)


@pytest.mark.parametrize("as_of", ["2025-05-30", "2025-05-31", "2025-12-31"])
def test_processing_record_csv_rebuilds_the_catalogue_of_that_day(catalogue_history, as_of):
    with time_machine.travel(REPORT_AT, tick=False):
        text = processing_record_csv(processing_record(as_of=date.fromisoformat(as_of)))

    rows = list(csv.reader(io.StringIO(text)))
    assert rows[0][:3] == ["as_of", "purpose", "purpose_name"]
    assert rows[1:] == _expected_record(as_of)


def test_processing_record_before_the_catalogue_existed_is_empty(catalogue_history):
    with time_machine.travel(REPORT_AT, tick=False):
        record = processing_record(as_of=date(2025, 1, 9))

    assert record.activities == []


def test_processing_record_json_has_every_activity_and_recipient(catalogue_history, settings):
    settings.PORTAL_CONTROLLER = {**settings.PORTAL_CONTROLLER, "name": "Example Ltd", "address": "1 Main St"}
    with time_machine.travel(REPORT_AT, tick=False):
        document = json.loads(processing_record_json(processing_record(as_of=date(2025, 5, 30))))

    assert document["type"] == "gdpr-art30-record-of-processing"
    assert (document["as_of"], document["time_zone"], document["generated_at"]) == (
        "2025-05-30",
        TZ,
        "2026-03-01T20:00:00Z",
    )
    assert document["controller"]["name"] == "Example Ltd"
    assert document["controller"]["address"] == "1 Main St"
    billing, marketing = document["activities"]
    assert billing == {
        "purpose": "billing",
        "name": "Billing",
        "category": "",
        "legal_basis": "contract",
        "legal_basis_label": "Needed to provide the service you signed up for",
        "sale_or_sharing": False,
        "notice_version": 1,
        "notice_published_at": "2025-01-10T17:00:00Z",
        "data_categories": ["Transactions"],
        "retention": "Ten years",
        "recipients": [],
    }
    assert {key: value for key, value in marketing.items() if key != "recipients"} == {
        "purpose": "marketing",
        "name": "Marketing",
        "category": "marketing",
        "legal_basis": "consent",
        "legal_basis_label": "Your consent",
        "sale_or_sharing": True,
        "notice_version": 1,
        "notice_published_at": "2025-01-10T17:00:00Z",
        "data_categories": ["=Browsing behaviour", "Contact details"],
        "retention": "Two years",
    }
    assert marketing["recipients"] == [
        {
            "slug": "adco",
            "name": "Ad Co",
            "kind": "advertiser",
            "kind_label": "Advertiser",
            "country": "US",
            "status": "active",
            "data_categories": ["=Browsing behaviour", "Contact details"],
        },
        {
            "slug": "mailer",
            "name": "Mailer",
            "kind": "service_provider",
            "kind_label": "Service provider",
            "country": "DE",
            "status": "active",
            "data_categories": ["Contact details"],
        },
    ]


def test_processing_page_and_downloads(catalogue_history, client):
    client = _admin(client, AUDITOR)
    url = reverse(PROCESSING_URL)
    with time_machine.travel(REPORT_AT, tick=False):
        page = client.get(url, {"as_of": "2025-12-31"})
        as_csv = client.get(url, {"as_of": "2025-12-31", "format": "csv"})
        as_json = client.get(url, {"as_of": "2025-12-31", "format": "json"})
        today = client.get(url)
        future = client.get(url, {"as_of": "2026-03-02"})
        record = processing_record(as_of=date(2025, 12, 31))

    html = page.content.decode()
    assert page.status_code == 200
    assert _row_cells(html, "purpose-marketing") == [
        "Your consent",
        "Version 2",
        "Contact information",
        "One year",
        "<div>Ad Co (Advertiser, IE): Contact information</div>",
    ]
    assert _row_cells(html, "purpose-billing")[-1] == "No recipients"
    assert _row_cells(html, "purpose-research")[2:4] == ["=Browsing behaviour", "Six months"]
    assert list(csv.reader(io.StringIO(as_csv.content.decode())))[1:] == _expected_record("2025-12-31")
    assert as_csv["Content-Disposition"] == 'attachment; filename="record-of-processing-2025-12-31.csv"'
    assert as_json["Content-Type"] == "application/json"
    assert json.loads(as_json.content)["activities"] == json.loads(processing_record_json(record))["activities"]
    assert today.context["record"].as_of == date(2026, 3, 1)
    assert future.context["record"] is None


# Who may open them ---------------------------------------------------------------------------


def _snapshot() -> dict[str, list[str]]:
    return {
        model._meta.label: sorted(repr(row) for row in model._default_manager.values_list())
        for model in apps.get_models()
        if model._meta.label != "sessions.Session" and model._meta.managed
    }


ALLOWED = {PRIVACY_OFFICER: True, AUDITOR: True, SUPPORT_AGENT: False, PARTNER_MANAGER: False}


@pytest.mark.parametrize(
    "role", [PRIVACY_OFFICER, AUDITOR, SUPPORT_AGENT, PARTNER_MANAGER, "superuser", "no role", "consumer", "anonymous"]
)
def test_only_privacy_officers_and_auditors_open_the_reports_and_nothing_changes(year_of_requests, client, role):
    if role == "consumer":
        client.force_login(UserFactory(email="nosy@example.com"))
    elif role == "no role":
        user = UserFactory(email="staff@staff.example.com", is_staff=True)
        TOTP.activate(user, generate_totp_secret())
        client.force_login(user)
    elif role != "anonymous":
        _admin(client, None if role == "superuser" else role)
    urls = [
        reverse(CCPA_URL),
        reverse(CCPA_URL) + "?year=2025&scope=all&format=csv",
        reverse(PROCESSING_URL),
        reverse(PROCESSING_URL) + "?format=csv",
        reverse(PROCESSING_URL) + "?format=json",
    ]
    before = _snapshot()

    with time_machine.travel(REPORT_AT, tick=False):
        answers = [client.get(url) for url in urls]
        index = client.get(reverse("admin:index"))

    allowed = ALLOWED.get(role, role == "superuser")
    let_in = role not in ("consumer", "anonymous")
    expected = 200 if allowed else (403 if let_in else 302)
    assert [answer.status_code for answer in answers] == [expected] * len(urls)
    if not let_in:
        assert all(answer["Location"].startswith(reverse("admin:login")) for answer in answers)
    else:
        links = [report["url"] for report in index.context["reports"]]
        assert links == ([reverse(CCPA_URL), reverse(PROCESSING_URL)] if allowed else [])
        assert (b'id="regulator-reports"' in index.content) == allowed
    assert _snapshot() == before


def test_the_report_permission_is_no_one_elses():
    from portal.roles import ROLE_PERMISSIONS

    holders = {
        role
        for role, permissions in ROLE_PERMISSIONS.items()
        if "privacy_requests.view_regulator_reports" in permissions
    }
    assert holders == {PRIVACY_OFFICER, AUDITOR}
