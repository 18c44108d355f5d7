import pytest
from allauth.account.models import EmailAddress
from django.core import mail
from django.urls import reverse

from portal.models import User
from tests.factories import PASSWORD, UserFactory

STRONG = "a sturdy pass phrase 2026"


@pytest.mark.parametrize(
    ("data", "field"),
    [
        ({"email": "not-an-email", "password1": STRONG, "password2": STRONG}, "email"),
        ({"email": "new@example.com", "password1": "12345", "password2": "12345"}, "password1"),
        ({"email": "new@example.com", "password1": "password123", "password2": "password123"}, "password1"),
        ({"email": "new@example.com", "password1": STRONG, "password2": STRONG + "x"}, "password2"),
    ],
    ids=["invalid-email", "short-password", "common-password", "mismatched-confirmation"],
)
def test_signup_bad_input_shows_form_errors_and_creates_no_user(client, db, data, field):
    response = client.post(reverse("account_signup"), data)
    assert response.status_code == 200
    assert response.context["form"].errors[field]
    assert not User.objects.exists()


def test_signup_requires_email_verification_before_login(client, db):
    response = client.post(
        reverse("account_signup"), {"email": "new@example.com", "password1": STRONG, "password2": STRONG}
    )
    assert response.status_code == 302
    assert response.url == reverse("account_email_verification_sent")
    assert "confirm-email" in mail.outbox[-1].body
    assert not EmailAddress.objects.get(email="new@example.com").verified
    assert client.get("/").context["user"].is_anonymous


def test_signup_with_a_taken_email_looks_the_same_as_a_new_one(client, db):
    UserFactory(email="taken@example.com")
    response = client.post(
        reverse("account_signup"), {"email": "taken@example.com", "password1": STRONG, "password2": STRONG}
    )
    assert response.status_code == 302
    assert response.url == reverse("account_email_verification_sent")
    assert User.objects.filter(email="taken@example.com").count() == 1
    # The owner of the address is told instead of the visitor.
    assert mail.outbox[-1].to == ["taken@example.com"]


def test_password_reset_does_not_reveal_whether_an_account_exists(client, db):
    UserFactory(email="known@example.com")
    known = client.post(reverse("account_reset_password"), {"email": "known@example.com"})
    unknown = client.post(reverse("account_reset_password"), {"email": "nobody@example.com"})
    assert known.status_code == unknown.status_code == 302
    assert known.url == unknown.url


def test_login_failure_message_does_not_reveal_whether_an_account_exists(client, db):
    UserFactory(email="known@example.com")
    known = client.post(reverse("account_login"), {"login": "known@example.com", "password": "wrong password"})
    unknown = client.post(reverse("account_login"), {"login": "nobody@example.com", "password": "wrong password"})
    assert known.context["form"].non_field_errors() == unknown.context["form"].non_field_errors()


def test_too_many_failed_logins_are_rate_limited(client, db):
    UserFactory(email="target@example.com")
    for _ in range(5):
        client.post(reverse("account_login"), {"login": "target@example.com", "password": "wrong password"})
    # Even the right password is refused once the limit is reached.
    response = client.post(reverse("account_login"), {"login": "target@example.com", "password": PASSWORD})
    assert "Too many failed login attempts" in str(response.context["form"].non_field_errors())
    assert client.get("/").context["user"].is_anonymous


def test_verified_user_can_log_in(client, db):
    UserFactory(email="person@example.com")
    response = client.post(reverse("account_login"), {"login": "person@example.com", "password": PASSWORD})
    assert response.status_code == 302
    assert client.get("/").context["user"].email == "person@example.com"


def test_sensitive_pages_send_a_stale_session_to_reauthenticate(consumer_client):
    # Turning on two-factor authentication is one of allauth's reauthentication-protected views;
    # export and deletion use the same decorator.
    response = consumer_client.get(reverse("mfa_activate_totp"))
    assert response.status_code == 302
    assert response.url.startswith(reverse("account_reauthenticate"))


@pytest.fixture
def second_address(consumer):
    return EmailAddress.objects.create(user=consumer, email="second@example.com", verified=True, primary=False)


def _addresses(user) -> set[tuple[str, bool]]:
    return set(EmailAddress.objects.filter(user=user).values_list("email", "primary"))


@pytest.mark.parametrize(
    "data",
    [
        {"action_add": "", "email": "attacker@example.com"},
        {"action_primary": "", "email": "second@example.com"},
        {"action_remove": "", "email": "consumer@example.com"},
    ],
    ids=["add", "make-primary", "remove"],
)
def test_a_stale_session_must_enter_the_password_again_to_change_email_addresses(
    consumer_client, consumer, second_address, data
):
    before = _addresses(consumer)
    response = consumer_client.post(reverse("account_email"), data)
    assert response.status_code == 302
    assert response.url.startswith(reverse("account_reauthenticate"))
    assert _addresses(consumer) == before
    consumer.refresh_from_db()
    assert consumer.email == "consumer@example.com"


def test_after_reauthentication_the_primary_address_can_change(reauthenticated_client, consumer, second_address):
    response = reauthenticated_client.post(
        reverse("account_email"), {"action_primary": "", "email": "second@example.com"}
    )
    assert response.status_code == 302
    assert response.url == reverse("account_email")
    assert _addresses(consumer) == {("consumer@example.com", False), ("second@example.com", True)}


def test_changing_the_password_needs_the_current_one(consumer_client, consumer):
    new = "another sturdy pass phrase"
    data = {"oldpassword": "not the password", "password1": new, "password2": new}
    response = consumer_client.post(reverse("account_change_password"), data)
    assert response.status_code == 200
    assert response.context["form"].errors["oldpassword"]
    consumer.refresh_from_db()
    assert consumer.check_password(PASSWORD)
