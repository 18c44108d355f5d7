"""Notices in every shipped language: storage, publication, consumer pages, receipts and the data migration."""

import importlib
import re
from collections.abc import Iterator

import pytest
from django.apps import apps as django_apps
from django.urls import reverse
from django.utils import translation

from audit.services import Actor
from consents.models import ConsentReceipt, DataCategory, Purpose, PurposeVersion
from consents.services.consents import consent_grant, consent_revoke
from consents.services.notices import NoticeUntranslated, purpose_version_publish
from tests.factories import DataCategoryFactory, PurposeFactory, notice_translations, publish_form_texts

migration = importlib.import_module("consents.migrations.0009_notice_translations")

TERMS = {"legal_basis": "consent", "default_duration_type": "persistent"}


@pytest.fixture(autouse=True)
def _page_language_reset() -> Iterator[None]:
    # A request leaves its language active in the thread; later tests expect the default.
    yield
    translation.deactivate()


def test_publishing_without_every_language_is_refused_and_publishes_nothing(db):
    purpose = PurposeFactory(slug="offers", name="Offers")

    with pytest.raises(NoticeUntranslated) as refused, translation.override("en"):
        purpose_version_publish(
            purpose=purpose,
            description="New text",
            retention="One year",
            data_categories=list(purpose.current_version.data_categories.all()),
            material=False,
            change_summary="Clearer",
            actor=Actor.system("tests"),
            translations={"zh-hans": {"name": "优惠", "description": "新文本", "retention": ""}},
        )

    assert "Simplified Chinese" in refused.value.message
    assert purpose.versions.count() == 1


def test_publishing_with_an_untranslated_data_category_is_refused(db):
    purpose = PurposeFactory(slug="offers", name="Offers")
    bare = DataCategory.objects.create(slug="bare", name="Bare category")

    with pytest.raises(NoticeUntranslated) as refused, translation.override("en"):
        purpose_version_publish(
            purpose=purpose,
            description="New text",
            retention="One year",
            data_categories=[bare],
            material=False,
            change_summary="Clearer",
            actor=Actor.system("tests"),
            translations=notice_translations(description="New", retention="One year", change_summary="Clearer"),
        )

    assert "“Bare category”" in refused.value.message
    assert purpose.versions.count() == 1


def test_admin_publish_form_names_the_missing_language(staff_client, db):
    purpose = PurposeFactory(slug="offers", name="Offers")
    category = purpose.current_version.data_categories.get()
    data = {
        "name": "Offers",
        "description": "We suggest products that fit how you spend and save.",
        "retention": "One year",
        "data_categories": [category.pk],
        "change_summary": "Clearer wording.",
        **TERMS,
    }

    response = staff_client.post(reverse("admin:consents_purpose_publish", args=[purpose.pk]), data)

    assert response.status_code == 200
    page = response.content.decode()
    assert "The notice has no translation in: Simplified Chinese." in page
    assert "Needed in Simplified Chinese before publishing." in page
    assert purpose.versions.count() == 1

    translated = staff_client.post(
        reverse("admin:consents_purpose_publish", args=[purpose.pk]),
        data | publish_form_texts(purpose.current_version, change_summary="措辞更清楚。") | {"name_zh_hans": "优惠"},
    )

    assert translated.status_code == 302
    version = Purpose.objects.get(pk=purpose.pk).current_version
    assert version.number == 2
    assert version.translations["zh-hans"]["change_summary"] == "措辞更清楚。"
    assert version.translations["en"]["description"] == data["description"]
    assert Purpose.objects.get(pk=purpose.pk).translations["zh-hans"] == {"name": "优惠"}


def test_data_category_admin_saves_every_language(staff_client, db):
    response = staff_client.post(
        reverse("admin:consents_datacategory_add"),
        {"name": "Location", "slug": "location", "description": "Where you are.", "name_zh_hans": "位置"},
    )

    assert response.status_code == 302
    assert DataCategory.objects.get(slug="location").translations == {
        "en": {"name": "Location", "description": "Where you are."},
        "zh-hans": {"name": "位置", "description": ""},
    }


def test_consumer_reads_the_notice_in_the_page_language(consumer_client, consent_catalogue):
    offers = consent_catalogue["offers"]
    consumer_client.cookies["django_language"] = "zh-hans"

    chinese = consumer_client.get(reverse("consents:list")).content.decode()
    consumer_client.cookies["django_language"] = "en"
    english = consumer_client.get(reverse("consents:list")).content.decode()

    zh = offers.current_version.translations["zh-hans"]
    assert zh["description"] in chinese
    assert zh["name"] in chinese
    assert zh["retention"] in chinese
    assert "中文 Contact details" in chinese
    # What each partner receives is named in the page's language too.
    receives = re.findall(r'<span class="recipient-data">([^<]*)</span>', chinese)
    assert receives
    assert all(
        "中文" in line and "Contact details" not in line.replace("中文 Contact details", "") for line in receives
    )
    assert f">{offers.current_version.description}</p>" not in chinese
    assert '<p class="consent-description" lang' not in chinese
    assert offers.current_version.description in english
    assert zh["description"] not in english


def test_text_missing_in_the_page_language_falls_back_marked_with_its_language(consumer_client, consent_catalogue):
    # A notice published before translations existed has only its English text (as migrated).
    version = consent_catalogue["offers"].current_version
    PurposeVersion.objects.filter(pk=version.pk).update(translations={"en": version.translations["en"]})
    consumer_client.cookies["django_language"] = "zh-hans"

    page = consumer_client.get(reverse("consents:list")).content.decode()

    assert f'<p class="consent-description" lang="en">{version.description}</p>' in page


def test_receipt_is_issued_in_the_consumers_language(consumer, consent_catalogue):
    offers = consent_catalogue["offers"]
    with translation.override("zh-hans"):
        consent = consent_grant(user=consumer, purpose=offers, actor=Actor.consumer(consumer))

    payload = ConsentReceipt.objects.get(consent=consent).payload
    (item,) = payload["services"][0]["purposes"]
    zh = offers.current_version.translations["zh-hans"]
    assert payload["language"] == "zh"
    assert payload["services"][0]["service"] == zh["name"]
    assert (item["purpose"], item["termination"]) == (zh["description"], zh["retention"])
    assert item["piiCategoryNames"] == ["中文 Contact details", "中文 Transaction history"]


def test_receipt_follows_the_consumers_chosen_language_over_the_active_one(consumer, consent_catalogue):
    consumer.language = "zh-hans"
    consumer.save(update_fields=["language"])
    consent = consent_grant(user=consumer, purpose=consent_catalogue["ads"], actor=Actor.consumer(consumer))

    assert ConsentReceipt.objects.get(consent=consent).payload["language"] == "zh"


def test_receipt_page_marks_a_receipt_issued_in_another_language(consumer, consumer_client, consent_catalogue):
    with translation.override("en"):
        consent = consent_grant(user=consumer, purpose=consent_catalogue["offers"], actor=Actor.consumer(consumer))
    receipt = ConsentReceipt.objects.get(consent=consent)
    consumer_client.cookies["django_language"] = "zh-hans"

    page = consumer_client.get(reverse("consents:receipt_detail", args=[receipt.pk])).content.decode()

    assert f'<dd lang="en">{consent.version.retention}</dd>' in page


def test_activity_shows_labels_in_chinese_not_stored_codes(consumer, consumer_client, consent_catalogue):
    offers = consent_catalogue["offers"]
    consent_grant(user=consumer, purpose=offers, actor=Actor.consumer(consumer))
    consent_revoke(user=consumer, purpose=offers, actor=Actor.consumer(consumer))
    consumer_client.cookies["django_language"] = "zh-hans"

    page = consumer_client.get(reverse("audit:activity")).content.decode()

    assert "您撤回了同意" in page
    assert offers.translations["zh-hans"]["name"] in page
    assert "user action" not in page
    assert "user_action" not in page


def test_data_migration_makes_the_english_text_the_en_value(db):
    category = DataCategoryFactory(slug="legacy", name="Legacy data", translations={})
    purpose = PurposeFactory(slug="legacy-purpose", name="Legacy purpose")
    version = purpose.current_version
    DataCategory.objects.filter(pk=category.pk).update(description="Old rows", translations={})
    Purpose.objects.filter(pk=purpose.pk).update(translations={})
    PurposeVersion.objects.filter(pk=version.pk).update(translations={"zh-hans": {"name": "旧用途"}})

    migration.english_text_to_translations(django_apps, None)

    assert DataCategory.objects.get(pk=category.pk).translations == {
        "en": {"name": "Legacy data", "description": "Old rows"}
    }
    assert Purpose.objects.get(pk=purpose.pk).translations == {"en": {"name": "Legacy purpose"}}
    assert PurposeVersion.objects.get(pk=version.pk).translations == {
        "zh-hans": {"name": "旧用途"},
        "en": {
            "name": "Legacy purpose",
            "description": version.description,
            "retention": version.retention,
            "change_summary": version.change_summary,
        },
    }
