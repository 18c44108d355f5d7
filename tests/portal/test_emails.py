import re
from datetime import datetime
from smtplib import SMTPServerDisconnected
from types import SimpleNamespace

import pytest
from django.core import mail
from django.core.mail.backends.locmem import EmailBackend
from django.db import transaction
from django.urls import reverse
from django.utils import translation

from portal.emails import EmailError, render_mail, send_mail, send_mail_on_commit, staff_recipients
from tests.factories import StaffFactory, UserFactory

REMINDER = "consents/email/expiry_reminder"  # text and HTML
WEBHOOK_DISABLED = "consents/email/webhook_disabled"  # text only
CHINESE = re.compile(r"[\u4e00-\u9fff]")


def reminder_context() -> dict[str, object]:
    return {
        "purpose": SimpleNamespace(l10n=SimpleNamespace(name="Research")),
        "expires_at": datetime(2026, 7, 9, 8, 0),
        "consents_url": "https://portal.example/consents/",
    }


def webhook_context() -> dict[str, object]:
    return {
        "partner": SimpleNamespace(name="Shop", webhook_url="https://shop.example/hook"),
        "admin_url": "https://portal.example/admin/",
    }


def test_send_mail_renders_in_the_consumers_language():
    send_mail(REMINDER, to="zh@example.com", context=reminder_context(), language="zh-hans")
    (email,) = mail.outbox
    assert email.to == ["zh@example.com"]
    assert "2026年7月9日" in email.subject
    assert CHINESE.search(email.body)
    assert 'lang="zh-hans"' in email.alternatives[0][0]


def test_send_mail_without_a_language_uses_the_sites_default_not_the_active_one():
    with translation.override("zh-hans"):
        send_mail(REMINDER, to="en@example.com", context=reminder_context())
    (email,) = mail.outbox
    assert email.subject == "Your consent for “Research” ends on 9 Jul 2026"
    assert not CHINESE.search(email.body)


def test_html_alternative_is_attached_only_when_its_template_exists():
    with_html = render_mail(REMINDER, reminder_context(), ["a@example.com"])
    text_only = render_mail(WEBHOOK_DISABLED, webhook_context(), ["a@example.com"])
    [(html, mimetype)] = with_html.alternatives
    assert mimetype == "text/html"
    assert 'href="https://portal.example/consents/"' in html
    assert text_only.alternatives == []
    assert "https://shop.example/hook" in text_only.body


def test_subject_is_one_line_with_the_prefix_asked_for():
    email = render_mail(REMINDER, reminder_context(), ["a@example.com"], subject_prefix="[Privacy Portal] ")
    assert email.subject == "[Privacy Portal] Your consent for “Research” ends on 9 Jul 2026"


@pytest.mark.parametrize("error", [SMTPServerDisconnected("connection closed"), ConnectionRefusedError(111, "refused")])
def test_a_refusing_mail_server_raises_email_error(monkeypatch, error):
    def refuse(self, messages):
        raise error

    monkeypatch.setattr(EmailBackend, "send_messages", refuse)
    with pytest.raises(EmailError) as raised:
        send_mail(REMINDER, to="a@example.com", context=reminder_context())
    assert raised.value.__cause__ is error


def test_on_commit_email_waits_for_the_commit_and_a_rollback_sends_nothing(db, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        send_mail_on_commit(WEBHOOK_DISABLED, to="a@example.com", context=webhook_context())
        assert mail.outbox == []
    assert len(mail.outbox) == 1

    def change_that_fails() -> None:
        with transaction.atomic():
            send_mail_on_commit(WEBHOOK_DISABLED, to="b@example.com", context=webhook_context())
            raise RuntimeError("rolled back")

    with django_capture_on_commit_callbacks(execute=True), pytest.raises(RuntimeError):
        change_that_fails()
    assert len(mail.outbox) == 1


def test_on_commit_email_that_fails_is_logged_not_raised(db, monkeypatch, django_capture_on_commit_callbacks, caplog):
    def refuse(self, messages):
        raise SMTPServerDisconnected("connection closed")

    monkeypatch.setattr(EmailBackend, "send_messages", refuse)
    with django_capture_on_commit_callbacks(execute=True):
        send_mail_on_commit(WEBHOOK_DISABLED, to="a@example.com", context=webhook_context())
    assert "connection closed" in caplog.text


def test_staff_recipients_are_active_staff_with_an_address(db):
    first = StaffFactory(email="officer@example.com")
    second = StaffFactory(email="auditor@example.com", is_superuser=False)
    StaffFactory(email="gone@example.com", is_active=False)
    UserFactory(email="consumer@example.com")
    nameless = StaffFactory(email="blank@example.com")
    nameless.email = ""
    nameless.save(update_fields=["email"])
    assert staff_recipients() == [first.email, second.email]


def test_allauth_emails_take_the_same_path_in_the_pages_language(client, consumer):
    client.post(reverse("account_reset_password"), {"email": consumer.email}, HTTP_ACCEPT_LANGUAGE="zh-hans")
    (email,) = mail.outbox
    assert email.to == [consumer.email]
    assert email.subject.startswith("[Privacy Portal] ")
    assert CHINESE.search(email.subject)


def test_allauth_email_that_cannot_be_sent_raises_email_error(client, consumer, monkeypatch):
    def refuse(self, messages):
        raise SMTPServerDisconnected("connection closed")

    monkeypatch.setattr(EmailBackend, "send_messages", refuse)
    with pytest.raises(EmailError):
        client.post(reverse("account_reset_password"), {"email": consumer.email})
