import pytest
from django.urls import reverse

from audit.models import AuditEvent
from tests.factories import PASSWORD, UserFactory

pytestmark = pytest.mark.django_db


def test_login_and_password_change_appear_in_the_consumers_activity(client):
    user = UserFactory(email="person@example.com")
    client.post(reverse("account_login"), {"login": "person@example.com", "password": PASSWORD})
    client.post(
        reverse("account_change_password"),
        {"oldpassword": PASSWORD, "password1": "a brand new pass phrase", "password2": "a brand new pass phrase"},
    )
    actions = list(AuditEvent.objects.filter(subject=user).order_by("seq").values_list("action", flat=True))
    assert actions[:2] == ["security.logged_in", "security.password_changed"]
    entries = client.get(reverse("audit:activity")).context["entries"]
    assert {e.headline for e in entries} >= {"Signed in", "Password changed"}


def test_one_consumers_security_events_never_reach_another(client, consumer, other_consumer):
    client.post(reverse("account_login"), {"login": other_consumer.email, "password": PASSWORD})
    client.logout()
    client.force_login(consumer)
    entries = client.get(reverse("audit:activity")).context["entries"]
    assert entries == []
