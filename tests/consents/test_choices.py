"""Clear choices: what withdrawing changes per partner, and a re-consent review that labels changes."""

import re
from datetime import timedelta

import pytest
import time_machine
from django.contrib.messages import get_messages
from django.urls import reverse
from django.utils import timezone

from audit.services import Actor
from consents.models import Consent, ConsentStatus, Sharing
from consents.services.consents import consent_grant
from consents.services.notices import purpose_version_publish
from tests.factories import DataCategoryFactory, SharingFactory, notice_translations

ZH = {"accept-language": "zh-hans"}


def _partner_block(body: str, name: str) -> str:
    match = re.search(rf'<li class="impact-partner">\s*<strong>{re.escape(name)}</strong>.*?</li>', body, re.S)
    assert match, f"no impact entry for {name}"
    return match.group(0)


def _grant(user, purpose):
    return consent_grant(user=user, purpose=purpose, actor=Actor.consumer(user))


def test_withdraw_preview_says_per_partner_what_it_is_where_and_what_happens_to_shared_data(
    consumer_client, consumer, consent_catalogue
):
    _grant(consumer, consent_catalogue["offers"])
    body = consumer_client.get(reverse("consents:withdraw", args=["personalised-offers"])).content.decode()

    adco = _partner_block(body, "AdCo Media")
    assert "<dd>United States</dd>" in adco
    assert "Advertiser — a company that uses data to choose which adverts to show you" in adco
    assert "<dd>Contact details</dd>" in adco, "the categories this partner received"
    assert "It keeps its own copy under its own privacy policy." in adco

    mailer = _partner_block(body, "Mailer GmbH")
    assert "<dd>Germany</dd>" in mailer
    assert "Service provider — a company that handles data only on our instructions" in mailer
    assert "it deletes what it holds when its retention period ends." in mailer
    assert "Until you withdraw, then 30 days" in mailer
    assert "It keeps its own copy" not in mailer

    assert "What you lose" in body
    assert "What this purpose does for you stops: “We suggest offers that fit how you use your account.”" in body
    assert Consent.objects.get(user=consumer).status == ConsentStatus.GRANTED, "the preview changes nothing"


def test_withdraw_preview_explains_a_data_broker(consumer_client, consumer, consent_catalogue):
    _grant(consumer, consent_catalogue["credit"])
    body = consumer_client.get(reverse("consents:withdraw", args=["credit-check"])).content.decode()
    bureau = _partner_block(body, "Credit Bureau Ltd")
    assert "Data broker — a company that collects and sells data about people" in bureau
    assert "<dd>United Kingdom</dd>" in bureau


def test_withdraw_preview_in_chinese_names_countries_and_kinds_in_chinese(consumer_client, consumer, consent_catalogue):
    _grant(consumer, consent_catalogue["offers"])
    response = consumer_client.get(reverse("consents:withdraw", args=["personalised-offers"]), headers=ZH)
    assert response["Content-Language"] == "zh-hans"
    body = response.content.decode()
    assert "<dd>美国</dd>" in _partner_block(body, "AdCo Media")
    mailer = _partner_block(body, "Mailer GmbH")
    assert "<dd>德国</dd>" in mailer
    assert "服务提供商——仅按我们的指示处理数据的公司" in mailer
    assert "它仅按我们的指示行事" in mailer
    assert "您将失去什么" in body
    assert "United States" not in body
    assert "Germany" not in body


def test_another_consumer_cannot_preview_or_withdraw_someone_elses_consent(
    client, consumer, other_consumer, consent_catalogue
):
    _grant(consumer, consent_catalogue["offers"])
    client.force_login(other_consumer)
    url = reverse("consents:withdraw", args=["personalised-offers"])
    response = client.get(url)
    assert response.status_code == 302, "nothing of theirs to withdraw: back to their own card"
    assert [str(m) for m in get_messages(response.wsgi_request)] == [
        "There is no consent to withdraw for “Personalised offers”."
    ]
    client.post(url)
    assert Consent.objects.get(user=consumer).status == ConsentStatus.GRANTED


# Re-consent review


@pytest.fixture
def changed_recipients(consumer, consent_catalogue):
    """The consumer agreed to "Personalised offers" v1 (AdCo and Mailer); later Mailer stopped receiving the
    data, the credit bureau started, and a material v2 dropped transactions and added location."""
    offers = consent_catalogue["offers"]
    _grant(consumer, offers)
    later = time_machine.travel(timezone.now() + timedelta(minutes=5), tick=True)
    later.start()
    Sharing.objects.filter(partner=consent_catalogue["mailer"], purpose=offers).update(is_active=False)
    # update() leaves no history row; save() does, as the admin would.
    sharing = Sharing.objects.get(partner=consent_catalogue["mailer"], purpose=offers)
    sharing.save()
    SharingFactory(partner=consent_catalogue["bureau"], purpose=offers)
    purpose_version_publish(
        purpose=offers,
        description="We suggest offers that fit where you use your account.",
        retention="Until you withdraw, then 30 days",
        data_categories=[DataCategoryFactory(slug="contact-details"), DataCategoryFactory(slug="location")],
        material=True,
        change_summary="Location instead of transactions; a credit bureau instead of the mailer.",
        actor=Actor.system("tests"),
        translations=notice_translations(
            name=offers.name,
            description="We suggest offers that fit where you use your account.",
            retention="Until you withdraw, then 30 days",
            change_summary="Location instead of transactions; a credit bureau instead of the mailer.",
        ),
    )
    yield offers
    later.stop()


def _recipient(body: str, name: str) -> str:
    match = re.search(rf'<li class="recipient">(?:(?!</li>).)*?{re.escape(name)}.*?</li>', body, re.S)
    assert match, f"no recipient {name}"
    return match.group(0)


def test_review_labels_added_and_removed_partners_and_categories_in_words(consumer_client, changed_recipients):
    body = consumer_client.get(reverse("consents:review", args=["personalised-offers"])).content.decode()
    bureau = _recipient(body, "Credit Bureau Ltd")
    assert "Data broker — a company that collects and sells data about people · United Kingdom" in bureau
    assert ">Added</span>" in bureau
    assert '<ins class="diff-ins">Credit Bureau Ltd</ins>' in bureau
    mailer = _recipient(body, "Mailer GmbH")
    assert ">Removed</span>" in mailer
    assert '<del class="diff-del">Mailer GmbH</del>' in mailer
    adco = _recipient(body, "AdCo Media")
    assert "Added" not in adco
    assert "Removed" not in adco
    assert re.search(r'>Added</span> <ins class="diff-ins">Location</ins>', body)
    assert re.search(r'>Removed</span> <del class="diff-del">Transaction history</del>', body)


def test_review_in_chinese_labels_changes(consumer_client, changed_recipients):
    body = consumer_client.get(reverse("consents:review", args=["personalised-offers"]), headers=ZH).content.decode()
    assert ">新增</span>" in _recipient(body, "Credit Bureau Ltd")
    assert ">已删除</span>" in _recipient(body, "Mailer GmbH")


def test_review_gives_accept_and_decline_the_same_weight(consumer_client, changed_recipients):
    body = consumer_client.get(reverse("consents:review", args=["personalised-offers"])).content.decode()
    accept = re.search(r'<button type="submit" name="decision" value="accept"([^>]*)>', body)
    decline = re.search(r'<button type="submit" name="decision" value="decline"([^>]*)>', body)
    assert accept
    assert decline
    assert accept.group(1) == decline.group(1) == ' class="button-choice"'


def test_decline_goes_through_the_withdrawal_preview_then_withdraws(consumer_client, consumer, changed_recipients):
    review = reverse("consents:review", args=["personalised-offers"])
    response = consumer_client.post(review, {"decision": "decline"}, follow=True)
    assert response.redirect_chain[-1][0] == reverse("consents:withdraw", args=["personalised-offers"])
    body = response.content.decode()
    assert "Decline the new notice and withdraw your consent to “Personalised offers”?" in body
    assert "<dd>United Kingdom</dd>" in _partner_block(body, "Credit Bureau Ltd")
    assert f'href="{review}"' in body, "cancelling goes back to the review"
    assert Consent.objects.get(user=consumer).status == ConsentStatus.RECONSENT_REQUIRED

    response = consumer_client.post(reverse("consents:withdraw", args=["personalised-offers"]))
    messages = [str(m) for m in get_messages(response.wsgi_request)]
    assert messages[0].startswith("You declined the new notice for “Personalised offers”")
    assert Consent.objects.get(user=consumer).status == ConsentStatus.REVOKED


def test_another_consumer_cannot_decline_someone_elses_changed_notice(
    client, consumer, other_consumer, changed_recipients
):
    client.force_login(other_consumer)
    client.post(reverse("consents:review", args=["personalised-offers"]), {"decision": "decline"})
    client.post(reverse("consents:withdraw", args=["personalised-offers"]))
    assert Consent.objects.get(user=consumer).status == ConsentStatus.RECONSENT_REQUIRED
    assert not Consent.objects.filter(user=other_consumer, status=ConsentStatus.GRANTED).exists()
