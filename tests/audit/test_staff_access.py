import pytest

from audit.access import access_event_record_staff
from audit.models import AuditEvent
from tests.factories import StaffFactory

pytestmark = pytest.mark.django_db


def test_staff_viewing_a_consumer_is_recorded_as_access_and_audited(consumer):
    staff = StaffFactory(email="agent@example.com")
    event = access_event_record_staff(staff=staff, consumer=consumer, what="Opened the account page")
    assert event.user == consumer
    assert event.staff_user == staff
    assert event.purpose.slug == "customer-support"
    assert AuditEvent.objects.filter(subject=consumer, action="access.staff_viewed").exists()
