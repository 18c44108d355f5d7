"""Each partner's retention rule: kept per language, edited in the admin, shown before a consumer withdraws."""

import re
from collections.abc import Iterator

import pytest
from django.urls import reverse
from django.utils import translation

from audit.services import Actor
from consents.models import Partner
from consents.services.consents import consent_grant

ZH = {"accept-language": "zh-hans"}
ADCO_RULE = {
    "en": {"retention": "Deletes your profile within 90 days."},
    "zh-hans": {"retention": "在 90 天内删除您的画像。"},
}


@pytest.fixture(autouse=True)
def _page_language_reset() -> Iterator[None]:
    # A request leaves its language active in the thread; later tests expect the default.
    yield
    translation.deactivate()


def _partner_block(body: str, name: str) -> str:
    match = re.search(rf'<li class="impact-partner">\s*<strong>{re.escape(name)}</strong>.*?</li>', body, re.S)
    assert match, f"no impact entry for {name}"
    return match.group(0)


def _form(partner: Partner, **changes: str) -> dict[str, str]:
    data = {
        "name": partner.name,
        "slug": partner.slug,
        "kind": partner.kind,
        "country": partner.country,
        "status": partner.status,
        "retention": "",
        "retention_zh_hans": "",
    }
    return data | changes


def _give_rule(partner: Partner, translations: dict[str, dict[str, str]]) -> None:
    partner.retention = translations["en"]["retention"]
    partner.translations = translations
    partner.save(update_fields=["retention", "translations"])


def test_partner_admin_saves_the_retention_rule_in_every_language(staff_client, consent_catalogue):
    adco = consent_catalogue["adco"]
    url = reverse("admin:consents_partner_change", args=[adco.pk])
    assert 'name="retention_zh_hans"' in staff_client.get(url).content.decode()

    response = staff_client.post(
        url,
        _form(adco, retention=" Deletes your profile within 90 days. ", retention_zh_hans="在 90 天内删除您的画像。"),
    )

    assert response.status_code == 302
    adco.refresh_from_db()
    assert adco.retention == "Deletes your profile within 90 days."
    assert adco.translations == ADCO_RULE


def test_partner_admin_refuses_a_retention_rule_in_one_language_only(staff_client, consent_catalogue):
    adco = consent_catalogue["adco"]
    url = reverse("admin:consents_partner_change", args=[adco.pk])

    response = staff_client.post(url, _form(adco, retention="Deletes your profile within 90 days."))

    assert response.status_code == 200
    assert "Give the retention rule in every language, or in none." in response.content.decode()
    adco.refresh_from_db()
    assert (adco.retention, adco.translations) == ("", {})


def test_consumers_cannot_edit_a_partners_retention_rule(consumer_client, consent_catalogue):
    adco = consent_catalogue["adco"]
    url = reverse("admin:consents_partner_change", args=[adco.pk])

    response = consumer_client.post(url, _form(adco, retention="Keeps it forever.", retention_zh_hans="永久保存。"))

    assert response.status_code == 302
    assert response["Location"].startswith(reverse("admin:login"))
    adco.refresh_from_db()
    assert (adco.retention, adco.translations) == ("", {})


def test_withdraw_preview_gives_each_partners_retention_rule_in_the_page_language(
    consumer_client, consumer, consent_catalogue
):
    _give_rule(consent_catalogue["adco"], ADCO_RULE)
    consent_grant(user=consumer, purpose=consent_catalogue["offers"], actor=Actor.consumer(consumer))
    url = reverse("consents:withdraw", args=["personalised-offers"])

    english = consumer_client.get(url).content.decode()
    chinese = consumer_client.get(url, headers=ZH).content.decode()

    adco = _partner_block(english, "AdCo Media")
    assert "How long it keeps it" in adco
    assert '<dd class="impact-retention">Deletes your profile within 90 days.</dd>' in adco
    assert '<dd class="impact-retention">在 90 天内删除您的画像。</dd>' in _partner_block(chinese, "AdCo Media")
    # A service provider with no rule of its own is bound by the notice's.
    mailer = _partner_block(english, "Mailer GmbH")
    assert '<dd class="impact-retention">Until you withdraw, then 30 days</dd>' in mailer


def test_withdraw_preview_marks_a_retention_rule_not_in_the_page_language(consumer_client, consumer, consent_catalogue):
    _give_rule(consent_catalogue["adco"], {"en": ADCO_RULE["en"]})
    consent_grant(user=consumer, purpose=consent_catalogue["offers"], actor=Actor.consumer(consumer))

    body = consumer_client.get(reverse("consents:withdraw", args=["personalised-offers"]), headers=ZH).content.decode()

    assert '<dd class="impact-retention" lang="en">Deletes your profile within 90 days.</dd>' in body


def test_a_controller_without_a_rule_gets_no_retention_line(consumer_client, consumer, consent_catalogue):
    consent_grant(user=consumer, purpose=consent_catalogue["offers"], actor=Actor.consumer(consumer))

    body = consumer_client.get(reverse("consents:withdraw", args=["personalised-offers"])).content.decode()

    assert "impact-retention" not in _partner_block(body, "AdCo Media")


def test_consent_card_lists_each_partners_retention_rule(consumer_client, consent_catalogue):
    _give_rule(consent_catalogue["adco"], ADCO_RULE)

    english = consumer_client.get(reverse("consents:list")).content.decode()
    chinese = consumer_client.get(reverse("consents:list"), headers=ZH).content.decode()

    assert "Keeps what it receives: Deletes your profile within 90 days." in english
    assert "在 90 天内删除您的画像。" in chinese
