"""Rate limits and anything else keyed on the client address see the visitor, not the proxy."""

import pytest
from django.test import RequestFactory
from django.urls import reverse

from portal.http import client_ip
from tests.factories import PASSWORD, UserFactory
from tests.portal.test_settings import _manage

LOCKED_OUT = "Too many failed login attempts"


def _fail_logins_from(client, count: int, **headers: str) -> None:
    # Different unknown accounts each time, so only the per-address limit can trip, not the per-account one.
    for attempt in range(count):
        client.post(
            reverse("account_login"),
            {"login": f"nobody-{attempt}@example.com", "password": "wrong password"},
            headers=headers,
        )


def _log_in(client, email: str, **headers: str):
    return client.post(reverse("account_login"), {"login": email, "password": PASSWORD}, headers=headers)


@pytest.fixture
def behind_one_proxy(settings):
    settings.ALLAUTH_TRUSTED_PROXY_COUNT = 1
    settings.ALLAUTH_TRUSTED_CLIENT_IP_HEADER = None


@pytest.fixture
def behind_a_header_setting_proxy(settings):
    settings.ALLAUTH_TRUSTED_PROXY_COUNT = 0
    settings.ALLAUTH_TRUSTED_CLIENT_IP_HEADER = "X-Real-IP"


def test_behind_a_proxy_one_visitors_failed_logins_do_not_lock_out_another(client, db, behind_one_proxy):
    UserFactory(email="bystander@example.com")
    # The proxy appends the address it saw; everything before it is whatever the visitor sent.
    _fail_logins_from(client, 5, x_forwarded_for="198.51.100.9, 203.0.113.5")
    response = _log_in(client, "bystander@example.com", x_forwarded_for="198.51.100.7")
    assert response.status_code == 302
    assert client.get("/").context["user"].email == "bystander@example.com"


def test_behind_a_proxy_the_locked_out_visitor_cannot_escape_by_forging_x_forwarded_for(client, db, behind_one_proxy):
    UserFactory(email="attacker@example.com")
    _fail_logins_from(client, 5, x_forwarded_for="203.0.113.5")
    response = _log_in(client, "attacker@example.com", x_forwarded_for="198.51.100.1, 203.0.113.5")
    assert LOCKED_OUT in str(response.context["form"].non_field_errors())
    assert client.get("/").context["user"].is_anonymous


def test_behind_a_header_setting_proxy_visitors_are_told_apart_by_that_header(
    client, db, behind_a_header_setting_proxy
):
    UserFactory(email="bystander@example.com")
    UserFactory(email="attacker@example.com")
    _fail_logins_from(client, 5, x_real_ip="203.0.113.5", x_forwarded_for="198.51.100.1")
    locked = _log_in(client, "attacker@example.com", x_real_ip="203.0.113.5", x_forwarded_for="198.51.100.2")
    assert LOCKED_OUT in str(locked.context["form"].non_field_errors())
    response = _log_in(client, "bystander@example.com", x_real_ip="198.51.100.7")
    assert response.status_code == 302
    assert client.get("/").context["user"].email == "bystander@example.com"


def test_without_a_trusted_proxy_x_forwarded_for_is_ignored(client, db, settings):
    settings.ALLAUTH_TRUSTED_PROXY_COUNT = 0
    settings.ALLAUTH_TRUSTED_CLIENT_IP_HEADER = None
    UserFactory(email="attacker@example.com")
    _fail_logins_from(client, 5, x_forwarded_for="203.0.113.5")
    response = _log_in(client, "attacker@example.com", x_forwarded_for="198.51.100.7")
    assert LOCKED_OUT in str(response.context["form"].non_field_errors())


@pytest.mark.parametrize(
    ("proxies", "header", "headers", "expected"),
    [
        (0, None, {"x_forwarded_for": "198.51.100.7"}, "127.0.0.1"),
        (1, None, {"x_forwarded_for": "198.51.100.1, 198.51.100.7"}, "198.51.100.7"),
        (2, None, {"x_forwarded_for": "198.51.100.1, 198.51.100.7, 10.0.0.2"}, "198.51.100.7"),
        (1, None, {}, "127.0.0.1"),
        (0, "X-Real-IP", {"x_real_ip": "2001:db8::7", "x_forwarded_for": "198.51.100.1"}, "2001:db8::7"),
    ],
    ids=["direct", "one-proxy", "two-proxies", "one-proxy-direct-hit", "header"],
)
def test_client_ip_follows_the_rate_limits_rule(settings, proxies, header, headers, expected):
    settings.ALLAUTH_TRUSTED_PROXY_COUNT = proxies
    settings.ALLAUTH_TRUSTED_CLIENT_IP_HEADER = header
    request = RequestFactory().get("/", headers=headers, REMOTE_ADDR="127.0.0.1")
    assert client_ip(request) == expected


def _trusted_proxy_settings(env: dict[str, str]) -> list[str]:
    show = "from django.conf import settings as s\nprint(s.ALLAUTH_TRUSTED_PROXY_COUNT,"
    show += " s.ALLAUTH_TRUSTED_CLIENT_IP_HEADER)"
    return _manage("shell", "--no-imports", "-c", show, env=env).stdout.split()


def test_trusted_proxy_settings_are_read_from_the_environment(tmp_path):
    base = {"PORTAL_ENV": "development", "PORTAL_VAR_DIR": str(tmp_path)}
    assert _trusted_proxy_settings(base) == ["0", "None"]
    assert _trusted_proxy_settings(base | {"TRUSTED_PROXY_COUNT": "1"}) == ["1", "None"]
    assert _trusted_proxy_settings(base | {"TRUSTED_CLIENT_IP_HEADER": "X-Real-IP"}) == ["0", "X-Real-IP"]
    both = _manage("check", env=base | {"TRUSTED_PROXY_COUNT": "1", "TRUSTED_CLIENT_IP_HEADER": "X-Real-IP"})
    assert both.returncode != 0
    assert "not both" in both.stderr


def test_a_forwarded_chain_shorter_than_the_trusted_proxies_is_a_bad_request_not_a_server_error(client, db, settings):
    settings.ALLAUTH_TRUSTED_PROXY_COUNT = 2
    settings.ALLAUTH_TRUSTED_CLIENT_IP_HEADER = None
    response = client.post(
        reverse("account_login"),
        {"login": "nobody@example.com", "password": "wrong password"},
        headers={"x-forwarded-for": "203.0.113.9"},
    )
    assert response.status_code == 400


def test_the_token_endpoint_throttles_the_visitor_behind_the_proxy(db, settings):
    from portal.http import client_ip

    settings.ALLAUTH_TRUSTED_PROXY_COUNT = 1
    settings.ALLAUTH_TRUSTED_CLIENT_IP_HEADER = None
    request = RequestFactory().post("/oauth/token/", headers={"x-forwarded-for": "198.51.100.7"})
    assert client_ip(request) == "198.51.100.7"
