"""No log line written while a consumer signs up, logs in, exports or deletes names their email address."""

import logging
import re
from collections.abc import Iterator
from datetime import timedelta

import pytest
import time_machine
from django.conf import settings
from django.core import mail
from django.urls import reverse
from django.utils import timezone

from portal.models import User
from privacy_requests.models import PrivacyRequest, RequestKind, RequestStatus
from privacy_requests.tasks import privacy_requests_tick
from tests.privacy_requests.helpers import consumer_data_seed

EMAIL = "zq-logcheck@example.com"
PASSWORD = "a sturdy pass phrase 2026"
# Loggers that do not hand their records to the root logger, so caplog would not see them.
NON_PROPAGATING = ("celery", "celery.task", "celery.app.trace", "celery.worker", "celery.redirected")

# factory_boy logs the objects a test builds; that is the test's doing, not the portal's.
TEST_TOOLING = ("factory",)

pytestmark = pytest.mark.usefixtures("media_root", "celery_eager")


class _Collector(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


@pytest.fixture
def every_log_record() -> Iterator[list[logging.LogRecord]]:
    """Every record any logger emits at DEBUG or above during the test (test tooling's own aside)."""
    collector = _Collector()
    loggers = [logging.getLogger(), *(logging.getLogger(name) for name in NON_PROPAGATING)]
    saved = [log.level for log in loggers]
    for log in loggers:
        log.addHandler(collector)
        log.setLevel(logging.DEBUG)
    yield collector.records
    for log, level in zip(loggers, saved, strict=True):
        log.removeHandler(collector)
        log.setLevel(level)


def _leaks(records: list[logging.LogRecord]) -> list[str]:
    """The formatted records (message, arguments and traceback) that contain the address or its local part."""
    formatter = logging.Formatter("%(name)s %(levelname)s %(message)s")
    pattern = re.compile(re.escape(EMAIL.split("@")[0]), re.IGNORECASE)
    leaks = []
    for record in records:
        if record.name.startswith(TEST_TOOLING):
            continue
        text = formatter.format(record) + repr(record.args) + repr(getattr(record, "request", ""))
        if pattern.search(text):
            leaks.append(text)
    return leaks


def test_signup_login_export_and_deletion_log_no_email_address(
    client, db, every_log_record, django_capture_on_commit_callbacks
):
    # Signup, the verification link, a failed and a good login.
    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(
            reverse("account_signup"), {"email": EMAIL, "password1": PASSWORD, "password2": PASSWORD}
        )
    assert response.status_code == 302
    link = re.search(r"https?://\S+/confirm-email/\S+", mail.outbox[-1].body).group(0)  # type: ignore[union-attr]
    client.post(link)
    client.post(reverse("account_logout"))
    client.post(reverse("account_login"), {"login": EMAIL, "password": "wrong password"})
    response = client.post(reverse("account_login"), {"login": EMAIL, "password": PASSWORD})
    assert response.status_code == 302
    # Export and deletion ask for the password again, however fresh the login.
    assert client.post(reverse("account_reauthenticate"), {"password": PASSWORD}).status_code == 302
    user = User.objects.get(email=EMAIL)
    consumer_data_seed(user)

    # An export, built by its task, then downloaded.
    with django_capture_on_commit_callbacks(execute=True):
        client.post(reverse("requests:export"))
    export = PrivacyRequest.objects.get(user=user, kind=RequestKind.EXPORT)
    assert export.status == RequestStatus.COMPLETED
    assert client.get(reverse("requests:download", args=[export.pk])).status_code == 200

    # A deletion, carried out by the periodic task once the grace period is over.
    with django_capture_on_commit_callbacks(execute=True):
        client.post(reverse("requests:delete"), {"confirmation": "DELETE"})
    grace_over = timezone.now() + timedelta(days=settings.DELETION_GRACE_DAYS, minutes=1)
    with time_machine.travel(grace_over), django_capture_on_commit_callbacks(execute=True):
        privacy_requests_tick()
    assert not User.objects.filter(email=EMAIL).exists()

    assert every_log_record, "the capture saw nothing: it is not wired to the loggers"
    assert _leaks(every_log_record) == []
