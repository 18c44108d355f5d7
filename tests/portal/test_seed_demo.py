import pytest
from allauth.account.models import EmailAddress
from allauth.mfa.utils import is_mfa_enabled
from django.core.management import CommandError, call_command

from audit.access import STAFF_PARTNER_SLUG
from audit.models import AccessEvent, AccessVerdict, AuditEvent
from audit.selectors import audit_chain_breaks
from consents.models import (
    Consent,
    ConsentReceipt,
    DataCategory,
    Partner,
    PartnerKind,
    Purpose,
    PurposeVersion,
    Sharing,
)
from portal.demo.history import ACCESS_DETAILS_ZH_HANS
from portal.models import User


def test_seed_demo_is_idempotent_and_creates_verified_logins(db, settings):
    call_command("seed_demo")
    call_command("seed_demo")
    demo = User.objects.get(email="demo@example.com")
    staff = User.objects.get(email="staff@example.com")
    # The two demo consumers (English, Chinese), the superuser, one staff member per role, and three
    # consumers with a history of requests (portal/demo/operations.py) who cannot log in.
    assert User.objects.count() == 10
    assert demo.check_password("demo-portal-2026")
    assert not demo.is_staff
    assert staff.is_staff
    assert is_mfa_enabled(staff)
    assert EmailAddress.objects.filter(verified=True, primary=True).count() == 7


def test_seed_demo_creates_one_mfa_ready_staff_member_per_role(db, capsys):
    call_command("seed_demo")
    call_command("seed_demo")

    printed = capsys.readouterr().out
    members = {
        "privacy-officer@example.com": "Privacy officer",
        "support@example.com": "Support agent",
        "partner-manager@example.com": "Partner manager",
        "auditor@example.com": "Auditor",
    }
    for email, role in members.items():
        user = User.objects.get(email=email)
        assert user.is_staff
        assert not user.is_superuser
        assert list(user.groups.values_list("name", flat=True)) == [role]
        assert user.check_password("demo-portal-2026")
        assert is_mfa_enabled(user)
        assert f"staff ({role}): {email} / demo-portal-2026" in printed


def test_seed_demo_password_can_be_overridden(db, monkeypatch):
    monkeypatch.setenv("DEMO_PASSWORD", "another demo secret")
    call_command("seed_demo")
    assert User.objects.get(email="demo@example.com").check_password("another demo secret")


def test_seed_demo_refuses_to_run_in_production(db, settings):
    settings.PRODUCTION = True
    with pytest.raises(CommandError, match="production"):
        call_command("seed_demo")
    assert not User.objects.exists()


def _snapshot() -> dict[str, int]:
    return {
        "categories": DataCategory.objects.count(),
        "category history": DataCategory.history.count(),
        "purposes": Purpose.objects.count(),
        "versions": PurposeVersion.objects.count(),
        "partners": Partner.objects.count(),
        "partner history": Partner.history.count(),
        "sharings": Sharing.objects.count(),
        "consents": Consent.objects.count(),
        "consent history": Consent.history.count(),
        "receipts": ConsentReceipt.objects.count(),
        "audit events": AuditEvent.objects.count(),
    }


def test_seed_demo_catalogue_is_realistic_and_complete(db):
    call_command("seed_demo")

    assert DataCategory.objects.count() >= 8
    assert set(DataCategory.objects.filter(sensitive=True).values_list("slug", flat=True)) >= {
        "health-purchases",
        "identity-documents",
    }
    purposes = {p.slug: p for p in Purpose.objects.select_related("current_version")}
    assert len(purposes) >= 7
    assert all(p.current_version is not None and len(p.current_version.description) > 80 for p in purposes.values())
    assert purposes["fraud-prevention"].is_essential
    assert purposes["service-emails"].legal_basis == "contract"
    assert purposes["advertising-partners"].gpc_covered
    assert (
        purposes["research-with-affiliates"].default_duration_type,
        purposes["research-with-affiliates"].default_period_days,
    ) == ("time_bound", 180)
    assert set(Partner.objects.values_list("kind", flat=True)) == set(PartnerKind.values)
    assert Partner.objects.count() >= 6
    for partner in Partner.objects.all():
        assert partner.sharings.exists(), partner
        if partner.slug == STAFF_PARTNER_SLUG:
            continue  # our own staff: the staff-access notice's retention applies
        # Its retention rule, shown before a withdrawal, in both shipped languages.
        assert partner.translations["en"]["retention"] == partner.retention != "", partner
        assert partner.translations["zh-hans"]["retention"] not in ("", partner.retention), partner
    for sharing in Sharing.objects.select_related("purpose__current_version").prefetch_related("data_categories"):
        notice = set(sharing.purpose.current_version.data_categories.all())
        assert set(sharing.data_categories.all()) <= notice, sharing


def test_seed_demo_gives_the_consumer_a_mix_of_decisions(db):
    call_command("seed_demo")

    demo = User.objects.get(email="demo@example.com")
    states = {c.purpose.slug: c for c in Consent.objects.filter(user=demo).select_related("purpose", "version")}
    assert states["personalised-offers"].status == "granted"
    assert states["product-analytics"].status == "granted"
    assert states["advertising-partners"].status == "revoked"
    research = states["research-with-affiliates"]
    assert (research.status, research.duration_type, research.period_days) == ("granted", "time_bound", 180)
    assert research.expires_at is not None
    credit = states["credit-risk-assessment"]
    assert credit.status == "reconsent_required"
    assert credit.version.number == 1
    assert credit.purpose.current_version.number == 2
    assert credit.purpose.current_version.material
    assert "fraud-prevention" not in states
    assert all(c.receipts.exists() for c in states.values())


def test_seed_demo_twice_adds_nothing_the_second_time(db):
    call_command("seed_demo")
    first = _snapshot()
    call_command("seed_demo")

    assert _snapshot() == first
    assert list(audit_chain_breaks()) == []


def test_seed_demo_registers_the_demo_partners_connected_app_with_a_secret_only_in_var(db, settings, tmp_path):
    import json

    from django.contrib.auth.hashers import check_password

    from consents.models import ConnectedApp
    from portal.demo.partner import DEMO_APP_CLIENT_ID

    settings.VAR_DIR = tmp_path
    call_command("seed_demo")
    path = tmp_path / "demo_partner.json"
    config = json.loads(path.read_text())
    app = ConnectedApp.objects.get(application__client_id=DEMO_APP_CLIENT_ID)
    assert config["app_client_id"] == DEMO_APP_CLIENT_ID
    assert app.redirect_uri_list == ["http://127.0.0.1:8001/callback"]
    assert app.partner.slug == "meridian-research-labs"
    assert sorted(app.data_categories.values_list("slug", flat=True)) == [
        "account-balances",
        "contact-details",
        "transaction-history",
    ]
    assert check_password(config["app_client_secret"], app.application.client_secret)

    call_command("seed_demo")  # the secret on file still works: kept
    assert json.loads(path.read_text())["app_client_secret"] == config["app_client_secret"]

    path.unlink()  # lost: the app gets a new secret, written for the demo partner
    call_command("seed_demo")
    app.application.refresh_from_db()
    renewed = json.loads(path.read_text())["app_client_secret"]
    assert renewed != config["app_client_secret"]
    assert check_password(renewed, app.application.client_secret)
    assert ConnectedApp.objects.count() == 1


def test_seed_demo_gives_the_demo_partners_credential_the_webhooks_manage_scope(db, settings, tmp_path):
    import json

    from audit.services import Actor
    from consents.models import PARTNER_DEFAULT_SCOPES, PartnerCredential
    from consents.services.partners import partner_credential_create

    settings.VAR_DIR = tmp_path
    call_command("seed_demo")
    path = tmp_path / "demo_partner.json"
    config = json.loads(path.read_text())
    credential = PartnerCredential.objects.get(application__client_id=config["client_id"])
    assert "webhooks:manage" in credential.scope_list

    # A credential seeded before the scope existed is replaced by one that has it.
    older, secret = partner_credential_create(
        partner=credential.partner, label="old", scopes=PARTNER_DEFAULT_SCOPES, actor=Actor.system("tests")
    )
    path.write_text(json.dumps(config | {"client_id": older.application.client_id, "client_secret": secret}))
    call_command("seed_demo")
    renewed = PartnerCredential.objects.get(application__client_id=json.loads(path.read_text())["client_id"])
    assert "webhooks:manage" in renewed.scope_list
    older.refresh_from_db()
    assert older.revoked_at is not None


def test_seed_demo_gives_every_dashboard_chart_and_report_something_to_show(db, settings):
    from datetime import timedelta

    from portal.operations.admin_views import _charts
    from portal.operations.figures import Period, operations_overview
    from privacy_requests.models import PrivacyRequest
    from privacy_requests.reports.ccpa import ccpa_metrics
    from privacy_requests.reports.periods import local_today
    from privacy_requests.reports.processing import processing_record

    call_command("seed_demo")
    requests = PrivacyRequest.objects.count()
    call_command("seed_demo")
    assert PrivacyRequest.objects.count() == requests

    today = local_today()
    overview = operations_overview(Period(first=today - timedelta(days=83), last=today))
    charts = _charts(overview)
    assert all(charts[name] for name in charts), {name: len(bars) for name, bars in charts.items()}
    assert any(row.withdrawals for row in overview.consent_weeks)
    assert any(row.unacknowledged for row in overview.partners)
    assert any(row.flagged for row in overview.partners)
    assert overview.requests
    last_year = ccpa_metrics(year=today.year - 1, scope="all")
    assert sum(line.received for line in last_year.lines) >= 4
    assert processing_record(as_of=today).activities


def test_seed_demo_consumers_have_their_own_language_and_time_zone_and_keep_a_chosen_one(db):
    call_command("seed_demo")
    demo = ["demo@example.com", "demo-zh@example.com"]
    zones = dict(User.objects.filter(email__in=demo).values_list("email", "time_zone"))
    assert zones == {"demo@example.com": "America/New_York", "demo-zh@example.com": "Asia/Shanghai"}
    chinese = User.objects.get(email="demo-zh@example.com")
    assert chinese.language == "zh-hans"
    assert Consent.objects.filter(user=chinese).exists()
    # Their access page has a history too, told in Chinese, with its flagged accesses.
    theirs = AccessEvent.objects.filter(user=chinese)
    details = set(theirs.values_list("detail", flat=True))
    assert details
    assert details <= set(ACCESS_DETAILS_ZH_HANS.values()), details
    english = AccessEvent.objects.filter(user__email="demo@example.com")
    flagged = theirs.exclude(verdict=AccessVerdict.COVERED).count()
    assert flagged == english.exclude(verdict=AccessVerdict.COVERED).count()
    assert flagged > 0

    User.objects.filter(pk=chinese.pk).update(time_zone="Europe/Paris")
    call_command("seed_demo")
    assert User.objects.get(pk=chinese.pk).time_zone == "Europe/Paris"
