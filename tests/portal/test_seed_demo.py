import pytest
from allauth.account.models import EmailAddress
from allauth.mfa.utils import is_mfa_enabled
from django.core.management import CommandError, call_command

from portal.models import User


def test_seed_demo_is_idempotent_and_creates_verified_logins(db, settings):
    call_command("seed_demo")
    call_command("seed_demo")
    demo = User.objects.get(email="demo@example.com")
    staff = User.objects.get(email="staff@example.com")
    assert User.objects.count() == 2
    assert demo.check_password("demo-portal-2026")
    assert not demo.is_staff
    assert staff.is_staff
    assert is_mfa_enabled(staff)
    assert EmailAddress.objects.filter(verified=True, primary=True).count() == 2


def test_seed_demo_password_can_be_overridden(db, monkeypatch):
    monkeypatch.setenv("DEMO_PASSWORD", "another demo secret")
    call_command("seed_demo")
    assert User.objects.get(email="demo@example.com").check_password("another demo secret")


def test_seed_demo_refuses_to_run_in_production(db, settings):
    settings.PRODUCTION = True
    with pytest.raises(CommandError, match="production"):
        call_command("seed_demo")
    assert not User.objects.exists()
