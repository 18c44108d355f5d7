import importlib

import pytest
from django.apps import apps

from audit.access import STAFF_PARTNER_SLUG, STAFF_PURPOSE_SLUG, access_event_record_staff
from consents.models import Partner, Purpose, Sharing
from tests.factories import DataCategoryFactory, StaffFactory

migration = importlib.import_module("consents.migrations.0005_staff_access_recipient")

pytestmark = pytest.mark.django_db


def test_the_staff_recipient_has_a_published_notice_a_sharing_and_no_webhook_secret():
    purpose = Purpose.objects.published().get(slug=STAFF_PURPOSE_SLUG)
    partner = Partner.objects.get(slug=STAFF_PARTNER_SLUG)

    assert purpose.current_version.number == 1
    assert Sharing.objects.filter(partner=partner, purpose=purpose, is_active=True).exists()
    assert partner.webhook_secret == ""


def test_creating_again_changes_nothing_and_reversing_removes_an_unused_recipient():
    migration.staff_recipient_create(apps, None)
    assert Purpose.objects.filter(slug=STAFF_PURPOSE_SLUG).count() == 1

    migration.staff_recipient_remove(apps, None)

    assert not Partner.objects.filter(slug=STAFF_PARTNER_SLUG).exists()
    assert not Purpose.objects.filter(slug=STAFF_PURPOSE_SLUG).exists()


def test_a_fresh_recipient_covers_the_categories_that_exist(consumer):
    migration.staff_recipient_remove(apps, None)
    contact = DataCategoryFactory(slug="contact")

    migration.staff_recipient_create(apps, None)

    purpose = Purpose.objects.get(slug=STAFF_PURPOSE_SLUG)
    assert list(purpose.current_version.data_categories.all()) == [contact]


def test_reversing_keeps_a_recipient_the_access_log_names(consumer):
    access_event_record_staff(staff=StaffFactory(), consumer=consumer, what="Phone call")

    migration.staff_recipient_remove(apps, None)

    assert Partner.objects.filter(slug=STAFF_PARTNER_SLUG).exists()
    assert Purpose.objects.filter(slug=STAFF_PURPOSE_SLUG).exists()


def test_the_recipient_has_a_change_history_like_rows_made_by_the_services():
    for model, slug in ((Purpose, STAFF_PURPOSE_SLUG), (Partner, STAFF_PARTNER_SLUG)):
        obj = model.objects.get(slug=slug)
        assert model.history.filter(id=obj.pk, history_type="+").count() == 1
