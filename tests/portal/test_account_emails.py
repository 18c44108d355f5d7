"""allauth's emails (confirm an address, choose a new password, unknown or taken address) in the portal's words."""

from collections.abc import Iterator

import pytest
from django.core import mail
from django.urls import reverse
from django.utils import translation

from tests.factories import UserFactory

STRONG = "a sturdy pass phrase 2026"
# (language, subject, a sentence of the body, the sign-off) for each email.
SIGNUP = {
    "en": ("Confirm your email address", "Before we send anything about your data", "Privacy Portal"),
    "zh-hans": ("请确认您的电子邮件地址", "在我们向这个地址发送任何与您的数据有关的内容之前", "隐私门户"),
}
RESET = {
    "en": ("Choose a new password", "your password stays as it is", "Privacy Portal"),
    "zh-hans": ("设置新密码", "您的密码保持不变", "隐私门户"),
}
UNKNOWN = {
    "en": ("No Privacy Portal account uses this address", "but no account uses it", "Privacy Portal"),
    "zh-hans": ("没有隐私门户账户使用这个地址", "但没有任何账户使用这个地址", "隐私门户"),
}
TAKEN = {
    "en": ("You already have a Privacy Portal account", "but an account already uses it", "Privacy Portal"),
    "zh-hans": ("您已经有一个隐私门户账户", "但已有账户使用这个地址", "隐私门户"),
}
ALLAUTH_DEFAULTS = ("Hello from", "Thank you for using", "Please Confirm Your Email Address", "Password Reset Email")


@pytest.fixture(autouse=True)
def _page_language_reset() -> Iterator[None]:
    # A request leaves its language active in the thread; later tests expect the default.
    yield
    translation.deactivate()


def _assert_in_portal_voice(email, expected) -> None:
    subject, sentence, sign_off = expected
    assert email.subject == f"[Privacy Portal] {subject}"
    assert sentence in email.body
    assert sign_off in email.body
    assert not any(default in email.subject + email.body for default in ALLAUTH_DEFAULTS)


@pytest.mark.parametrize("language", ["en", "zh-hans"])
def test_signup_confirmation_email_is_in_the_portals_words_and_the_pages_language(client, db, language):
    client.post(
        reverse("account_signup"),
        {"email": "new@example.com", "password1": STRONG, "password2": STRONG},
        headers={"accept-language": language},
    )
    (email,) = mail.outbox
    _assert_in_portal_voice(email, SIGNUP[language])
    assert "/accounts/confirm-email/" in email.body


@pytest.mark.parametrize("language", ["en", "zh-hans"])
def test_password_reset_email_is_in_the_portals_words_and_the_pages_language(client, db, language):
    UserFactory(email="known@example.com")
    client.post(
        reverse("account_reset_password"), {"email": "known@example.com"}, headers={"accept-language": language}
    )
    (email,) = mail.outbox
    _assert_in_portal_voice(email, RESET[language])
    assert "/accounts/password/reset/key/" in email.body


@pytest.mark.parametrize("language", ["en", "zh-hans"])
def test_reset_for_an_unknown_address_tells_its_owner_in_the_portals_words(client, db, language):
    client.post(
        reverse("account_reset_password"), {"email": "nobody@example.com"}, headers={"accept-language": language}
    )
    (email,) = mail.outbox
    assert email.to == ["nobody@example.com"]
    _assert_in_portal_voice(email, UNKNOWN[language])


@pytest.mark.parametrize("language", ["en", "zh-hans"])
def test_signup_with_a_taken_address_tells_its_owner_in_the_portals_words(client, db, language):
    UserFactory(email="taken@example.com")
    client.post(
        reverse("account_signup"),
        {"email": "taken@example.com", "password1": STRONG, "password2": STRONG},
        headers={"accept-language": language},
    )
    email = mail.outbox[-1]
    assert email.to == ["taken@example.com"]
    _assert_in_portal_voice(email, TAKEN[language])


def test_password_change_notice_gives_the_time_in_the_consumers_zone(consumer_client, consumer):
    consumer.time_zone = "Asia/Shanghai"
    consumer.save(update_fields=["time_zone"])
    consumer_client.post(
        reverse("account_change_password"),
        {"oldpassword": "correct horse battery staple", "password1": STRONG, "password2": STRONG},
    )
    email = mail.outbox[-1]
    assert "Someone just changed your Privacy Portal account:" in email.body
    assert " CST" in email.body, "China Standard Time, the consumer's zone"
    assert not any(default in email.body for default in ALLAUTH_DEFAULTS)
