"""The consumer's email settings: the profile's notifications section, the no-login link in every
email with its one-click unsubscribe (RFC 8058), and the language their emails are written in."""

from datetime import timedelta

import pytest
import time_machine
from django.conf import settings
from django.core import signing
from django.urls import reverse
from django.utils import timezone

from audit.actions import AuditAction
from audit.models import AuditEvent, NotificationKind
from portal.models import User
from portal.notifications import SALT, settings_links, settings_token
from tests.factories import PASSWORD, UserFactory

pytestmark = pytest.mark.django_db

SETTINGS = ("notify_material_changes", "notify_flagged_access", "monthly_digest")


def _settings(user: User) -> tuple[bool, bool, bool]:
    user.refresh_from_db()
    return (user.notify_material_changes, user.notify_flagged_access, user.monthly_digest)


def test_profile_shows_the_notification_settings_with_their_defaults(consumer_client):
    body = consumer_client.get(reverse("profile")).content.decode()
    assert 'id="notifications"' in body
    assert 'name="notify_material_changes" id="id_notify_material_changes" checked' in body
    assert 'name="notify_flagged_access"' in body
    assert 'name="monthly_digest" id="id_monthly_digest">' in body  # off by default
    assert "Email me when a notice changes and needs my decision" in body


def test_profile_notifications_section_is_translated(consumer_client):
    consumer_client.cookies[settings.LANGUAGE_COOKIE_NAME] = "zh-hans"
    body = consumer_client.get(reverse("profile")).content.decode()
    assert "声明变更且需要我重新决定时给我发邮件" in body
    assert "保存邮件设置" in body


def test_profile_form_changes_the_settings_without_javascript(consumer_client, consumer):
    response = consumer_client.post(reverse("profile_notifications"), {"monthly_digest": "on"})
    assert response.status_code == 302
    assert response["Location"].endswith("/profile/#notifications")
    assert _settings(consumer) == (False, False, True)
    event = AuditEvent.objects.filter(action=AuditAction.PROFILE_UPDATED).latest("pk")
    assert sorted(event.data["fields"]) == sorted(SETTINGS)


def test_profile_notifications_need_a_login(client, consumer):
    response = client.post(reverse("profile_notifications"), {"monthly_digest": "on"})
    assert response.status_code == 302
    assert reverse("account_login") in response["Location"]
    assert _settings(consumer) == (True, True, False)


def test_email_settings_link_works_without_login(client, consumer):
    url = settings_links(consumer, NotificationKind.MONTHLY_DIGEST).settings_url.removeprefix(settings.SITE_URL)
    page = client.get(url)
    assert page.status_code == 200
    assert consumer.email in page.content.decode()
    response = client.post(url, {"notify_flagged_access": "on", "monthly_digest": "on"}, follow=True)
    assert "Your email settings are saved." in response.content.decode()
    assert _settings(consumer) == (False, True, True)


def _unsubscribe_path(user: User, kind: NotificationKind) -> str:
    header = settings_links(user, kind).headers["List-Unsubscribe"]
    return header.removeprefix("<").removesuffix(">").removeprefix(settings.SITE_URL)


def test_one_click_unsubscribe_turns_off_that_email_only(client, consumer, other_consumer):
    path = _unsubscribe_path(consumer, NotificationKind.FLAGGED_ACCESS)
    # What a mail client sends (RFC 8058): a POST without cookies or CSRF token.
    csrf_client = client.__class__(enforce_csrf_checks=True)
    response = csrf_client.post(path, "List-Unsubscribe=One-Click", content_type="application/x-www-form-urlencoded")
    assert response.status_code == 200
    assert _settings(consumer) == (True, False, False)
    assert _settings(other_consumer) == (True, True, False)


def test_one_click_link_opened_in_a_browser_changes_nothing(client, consumer):
    path = _unsubscribe_path(consumer, NotificationKind.MATERIAL_CHANGE)
    response = client.get(path)
    assert response.status_code == 302
    assert response["Location"] == reverse("notification_settings", args=[settings_token(consumer)])
    assert client.post(path, {"something": "else"}).status_code == 400
    assert _settings(consumer) == (True, True, False)


def test_one_click_of_an_unknown_kind_is_not_found(client, consumer):
    path = reverse("notification_unsubscribe", args=[settings_token(consumer), "everything"])
    assert client.post(path, {"List-Unsubscribe": "One-Click"}).status_code == 404
    assert _settings(consumer) == (True, True, False)


def test_a_tampered_token_shows_an_error_and_changes_nothing(client, consumer, other_consumer):
    token = settings_token(consumer)
    rest = token.split(":", 1)[1]
    # Another consumer's id with this consumer's signature: refused.
    forged = signing.b64_encode(f'{{"u":{other_consumer.pk}}}'.encode()).decode() + ":" + rest
    for bad in (forged, token[:-2] + "xx", "not-a-token"):
        page = client.post(reverse("notification_settings", args=[bad]), {"monthly_digest": "on"})
        assert page.status_code == 400
        assert "This email-settings link is not valid." in page.content.decode()
        one_click = client.post(
            reverse("notification_unsubscribe", args=[bad, "material_change"]), {"List-Unsubscribe": "One-Click"}
        )
        assert one_click.status_code == 400
    assert _settings(consumer) == (True, True, False)
    assert _settings(other_consumer) == (True, True, False)


def test_an_expired_token_shows_an_error_and_changes_nothing(client, consumer):
    token = settings_token(consumer)
    with time_machine.travel(timezone.now() + settings.NOTIFICATION_LINK_MAX_AGE + timedelta(minutes=1)):
        page = client.post(reverse("notification_settings", args=[token]), {"monthly_digest": "on"})
    assert page.status_code == 400
    assert "This email-settings link has expired." in page.content.decode()
    assert _settings(consumer) == (True, True, False)


def test_a_token_signed_for_something_else_is_refused(client, consumer):
    token = signing.dumps({"u": consumer.pk}, salt="some.other.purpose")
    assert client.get(reverse("notification_settings", args=[token])).status_code == 400
    assert signing.loads(settings_token(consumer), salt=SALT) == {"u": consumer.pk}


def test_invalid_link_page_is_translated(client, consumer):
    client.cookies[settings.LANGUAGE_COOKIE_NAME] = "zh-hans"
    page = client.get(reverse("notification_settings", args=["not-a-token"]))
    assert "此邮件设置链接无效" in page.content.decode()


# --- The language emails are written in -----------------------------------------------------


def test_switching_language_records_it_for_a_signed_in_consumer(consumer_client, consumer):
    consumer_client.post(reverse("set_language"), {"language": "zh-hans", "next": "/"})
    consumer.refresh_from_db()
    assert consumer.language == "zh-hans"
    consumer_client.post(reverse("set_language"), {"language": "xx", "next": "/"})
    consumer.refresh_from_db()
    assert consumer.language == "zh-hans"


def test_logging_in_records_the_language_in_use(client):
    user = UserFactory(email="chinese@example.com")
    assert user.language == ""
    client.cookies[settings.LANGUAGE_COOKIE_NAME] = "zh-hans"
    client.post(reverse("account_login"), {"login": "chinese@example.com", "password": PASSWORD})
    user.refresh_from_db()
    assert user.language == "zh-hans"


def test_signing_up_records_the_language_in_use(client, db):
    client.cookies[settings.LANGUAGE_COOKIE_NAME] = "zh-hans"
    client.post(
        reverse("account_signup"),
        {
            "email": "new@example.com",
            "password1": "a long enough passphrase 42",
            "password2": "a long enough passphrase 42",
        },
    )
    assert User.objects.get(email="new@example.com").language == "zh-hans"
