"""Issue 11, "Clear choices", in a real browser in English and Simplified Chinese: the withdrawal preview
explains each partner, the re-consent review marks what changed and does not nudge, and the error summary
of the deletion confirmation (GOV.UK pattern) is at the top, focused and named in the title."""

# ruff: noqa: RUF001 (the Chinese texts use Chinese punctuation)

import re

import pytest
from playwright.sync_api import Browser, BrowserContext, Page, expect

from audit.services import Actor
from consents.models import Consent, ConsentStatus, Sharing
from consents.services.consents import consent_grant
from consents.services.notices import purpose_version_publish
from privacy_requests.models import PrivacyRequest, RequestKind
from tests.browser.test_phones import LANGUAGES, _sign_in
from tests.factories import PASSWORD, DataCategoryFactory, SharingFactory

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

ADCO_RETENTION = {
    "en": "Keeps a record of the adverts it showed you for 2 years.",
    "zh-hans": "保留向您展示广告的记录 2 年。",
}
# What the pages say, per language: the Chinese is written out rather than looked up in the catalogue,
# so a string that falls back to English fails here.
TEXT = {
    "en": {
        "withdraw": "Withdraw consent",
        "preview": "Withdraw your consent to “Personalised offers”?",
        "lose": "What you lose",
        "lost": "What this purpose does for you stops: “We suggest offers that fit how you use your account.”",
        "advertiser": "Advertiser — a company that uses data to choose which adverts to show you",
        "service_provider": "Service provider — a company that handles data only on our instructions, "
        "for example to send emails",
        "data_broker": "Data broker — a company that collects and sells data about people",
        "US": "United States",
        "DE": "Germany",
        "GB": "United Kingdom",
        "own_copy": "It keeps its own copy under its own privacy policy.",
        "instructions": "It works only on our instructions: we tell it to stop, and it deletes what it holds "
        "when its retention period ends.",
        "notice_retention": "Until you withdraw, then 30 days",
        "keeps": "How long it keeps it",
        "keep": "Keep my consent",
        "granted": "Granted since",
        "purpose": "Personalised offers",
        "added": "Added",
        "removed": "Removed",
        "location": "Location",
        "transactions": "Transaction history",
        "accept": "Accept the new notice",
        "decline": "Decline and withdraw my consent",
        "decline_preview": "Decline the new notice and withdraw your consent to “Personalised offers”?",
        "confirm": "Confirm withdrawal",
        "declined": "You declined the new notice for “Personalised offers”, so your consent is withdrawn.",
        "problem": "There is a problem",
        "title_error": "Error: ",
        "delete_error": "Type the word DELETE, or your email address.",
        "delete_label": "To confirm, type DELETE or your email address",
        "delete_button": "Delete my account",
    },
    "zh-hans": {
        "withdraw": "撤回同意",
        "preview": "要撤回您对“个性化优惠”的同意吗？",
        "lose": "您将失去什么",
        "lost": "此用途为您提供的服务将停止：“我们根据您使用账户的方式推荐合适的优惠。”",
        "advertiser": "广告商——利用数据决定向您展示哪些广告的公司",
        "service_provider": "服务提供商——仅按我们的指示处理数据的公司，例如代我们发送电子邮件",
        "data_broker": "数据经纪商——收集并出售个人数据的公司",
        "US": "美国",
        "DE": "德国",
        "GB": "英国",
        "own_copy": "它依据自己的隐私政策保存自己的副本。",
        "instructions": "它仅按我们的指示行事：我们通知它停止，它会在保存期限届满时删除其持有的数据。",
        "notice_retention": "直到您撤回同意后 30 天",
        "keeps": "保存多久",
        "keep": "保留我的同意",
        "granted": "起已同意",
        "purpose": "个性化优惠",
        "added": "新增",
        "removed": "已删除",
        "location": "中文 Location",
        "transactions": "中文 Transaction history",
        "accept": "接受新的告知",
        "decline": "拒绝并撤回我的同意",
        "decline_preview": "拒绝新声明并撤回您对“个性化优惠”的同意？",
        "confirm": "确认撤回",
        "declined": "您拒绝了“个性化优惠”的新告知，因此您的同意已撤回。",
        "problem": "出现了问题",
        "title_error": "错误：",
        "delete_error": "请输入 DELETE 一词，或您的电子邮箱地址。",
        "delete_label": "请输入 DELETE 或您的电子邮箱地址以确认",
        "delete_button": "删除我的账户",
    },
}
OFFERS_ZH = {
    "name": "个性化优惠",
    "description": "我们根据您使用账户的方式推荐合适的优惠。",
    "retention": "直到您撤回同意后 30 天",
    "change_summary": "首个版本",
}


def _context(browser: Browser, live_server, user, language: str) -> BrowserContext:
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    context.add_cookies([{"name": "django_language", "value": language, "url": live_server.url}])
    _sign_in(context, live_server, user)
    return context


def _offers_in_both_languages(catalogue) -> None:
    """The offers notice with a real Chinese translation, and AdCo's own retention rule in both languages."""
    offers = catalogue["offers"]
    version = offers.current_version
    purpose_version_publish(
        purpose=offers,
        description=version.description,
        retention=version.retention,
        data_categories=list(version.data_categories.all()),
        material=False,
        change_summary="Chinese translation",
        actor=Actor.system("tests"),
        translations={"zh-hans": OFFERS_ZH},
    )
    adco = catalogue["adco"]
    adco.retention = ADCO_RETENTION["en"]
    adco.translations = {language: {"retention": text} for language, text in ADCO_RETENTION.items()}
    adco.save(update_fields=["retention", "translations"])


@pytest.mark.parametrize("language", LANGUAGES)
def test_withdrawal_preview_says_per_partner_what_happens_and_what_the_consumer_loses(
    browser: Browser, live_server, consumer, consent_catalogue, artifacts_dir, language
):
    _offers_in_both_languages(consent_catalogue)
    consent_grant(user=consumer, purpose=consent_catalogue["offers"], actor=Actor.consumer(consumer))
    text = TEXT[language]
    context = _context(browser, live_server, consumer, language)
    try:
        page = context.new_page()
        page.goto(f"{live_server.url}/consents/")
        card = page.locator("#purpose-personalised-offers")
        card.get_by_role("link", name=text["withdraw"]).click()
        expect(card.get_by_role("heading", name=text["preview"])).to_be_focused()
        expect(card.get_by_role("heading", name=text["lose"])).to_be_visible()
        expect(card.locator(".impact-losses li").first).to_have_text(text["lost"])

        adco = card.locator(".impact-partner", has_text="AdCo Media")
        expect(adco.locator("dd").nth(0)).to_have_text(text["advertiser"])
        expect(adco.locator("dd").nth(1)).to_have_text(text["US"])
        expect(adco).to_contain_text(text["own_copy"])
        expect(adco.get_by_text(text["keeps"], exact=True)).to_be_visible()
        expect(adco.locator(".impact-retention")).to_have_text(ADCO_RETENTION[language])
        expect(adco.locator(".impact-retention")).not_to_have_attribute("lang", re.compile(".*"))

        # A service provider without its own rule keeps the data as long as the notice says.
        mailer = card.locator(".impact-partner", has_text="Mailer GmbH")
        expect(mailer.locator("dd").nth(0)).to_have_text(text["service_provider"])
        expect(mailer.locator("dd").nth(1)).to_have_text(text["DE"])
        expect(mailer).to_contain_text(text["instructions"])
        expect(mailer.locator(".impact-retention")).to_have_text(text["notice_retention"])
        page.screenshot(path=artifacts_dir / f"withdraw-preview-{language}.png", full_page=True)

        card.get_by_role("link", name=text["keep"]).click()
        expect(card.get_by_text(text["granted"])).to_be_visible()
        assert Consent.objects.get(user=consumer).status == ConsentStatus.GRANTED
    finally:
        context.close()


def _material_change(catalogue) -> None:
    """Version 2 of the offers notice: location added, transactions removed; Mailer no longer receives
    the data and Credit Bureau Ltd now does."""
    offers = catalogue["offers"]
    mailer = Sharing.objects.get(purpose=offers, partner=catalogue["mailer"])
    mailer.is_active = False
    mailer.save(update_fields=["is_active"])
    SharingFactory(partner=catalogue["bureau"], purpose=offers)
    purpose_version_publish(
        purpose=offers,
        description="We suggest offers that fit how and where you use your account.",
        retention="Until you withdraw, then 30 days",
        data_categories=[
            DataCategoryFactory(slug="contact-details"),
            DataCategoryFactory(slug="location", name="Location"),
        ],
        material=True,
        change_summary="We now also use your location.",
        actor=Actor.system("tests"),
        translations={
            "zh-hans": OFFERS_ZH
            | {
                "description": "我们根据您使用账户的方式和地点推荐合适的优惠。",
                "change_summary": "我们现在也会使用您的位置。",
            }
        },
    )


@pytest.mark.parametrize("language", LANGUAGES)
def test_reconsent_review_marks_changes_weighs_both_choices_equally_and_declines_through_the_preview(
    browser: Browser, live_server, consumer, consent_catalogue, artifacts_dir, language
):
    _offers_in_both_languages(consent_catalogue)
    consent_grant(user=consumer, purpose=consent_catalogue["offers"], actor=Actor.consumer(consumer))
    _material_change(consent_catalogue)
    text = TEXT[language]
    context = _context(browser, live_server, consumer, language)
    try:
        page = context.new_page()
        page.goto(f"{live_server.url}/consents/personalised-offers/review/")

        def marker(item, name: str) -> str:
            return page.locator(item, has_text=name).locator(".diff-marker").inner_text()

        assert marker(".recipient", "Credit Bureau Ltd") == text["added"]
        assert marker(".recipient", "Mailer GmbH") == text["removed"]
        expect(page.locator(".recipient", has_text="AdCo Media").locator(".diff-marker")).to_have_count(0)
        expect(page.locator(".recipient", has_text="Credit Bureau Ltd")).to_contain_text(text["data_broker"])
        expect(page.locator(".recipient", has_text="Credit Bureau Ltd")).to_contain_text(text["GB"])
        assert marker(".tag-list li", text["location"]) == text["added"]
        assert marker(".tag-list li", text["transactions"]) == text["removed"]

        accept = page.get_by_role("button", name=text["accept"], exact=True)
        decline = page.get_by_role("button", name=text["decline"], exact=True)
        weight = """e => {
            const s = getComputedStyle(e), box = e.getBoundingClientRect();
            return [s.backgroundColor, s.color, s.fontSize, s.fontWeight, s.borderTopWidth, s.borderTopColor,
                    s.borderTopStyle, s.paddingTop, s.paddingLeft, s.textDecorationLine, box.height];
        }"""
        assert accept.evaluate(weight) == decline.evaluate(weight), "neither choice is nudged"
        page.screenshot(path=artifacts_dir / f"reconsent-review-{language}.png", full_page=True)

        decline.click()
        expect(page.get_by_role("heading", name=text["decline_preview"])).to_be_visible()
        expect(page.locator(".impact-partner", has_text="Credit Bureau Ltd")).to_contain_text(text["GB"])
        expect(page.locator(".impact-partner", has_text="Mailer GmbH")).to_have_count(0)
        assert Consent.objects.get(user=consumer).status == ConsentStatus.RECONSENT_REQUIRED
        page.get_by_role("button", name=text["confirm"]).click()
        expect(page.get_by_text(text["declined"])).to_be_visible()
        assert Consent.objects.get(user=consumer).status == ConsentStatus.REVOKED
    finally:
        context.close()


@pytest.mark.parametrize("language", LANGUAGES)
def test_error_summary_is_focused_at_the_top_and_named_in_the_title_and_delete_is_accepted_in_any_case(
    browser: Browser, live_server, consumer, artifacts_dir, language
):
    text = TEXT[language]
    context = _context(browser, live_server, consumer, language)
    try:
        page: Page = context.new_page()
        page.goto(f"{live_server.url}/requests/delete/")
        field = page.get_by_label(text["delete_label"])
        field.fill("remove")
        page.get_by_role("button", name=text["delete_button"]).click()
        # allauth asks for the password again, then replays the submission.
        page.locator('input[name="password"]').fill(PASSWORD)
        page.locator('input[name="password"]').press("Enter")

        summary = page.locator(".error-summary")
        expect(summary.get_by_role("heading", name=text["problem"])).to_be_visible()
        expect(summary).to_be_focused()
        expect(page).to_have_title(re.compile("^" + re.escape(text["title_error"])))
        assert page.evaluate(
            "() => document.querySelector('.error-summary').getBoundingClientRect().top"
            " < document.querySelector('main h1').getBoundingClientRect().top"
        ), "the summary comes before the page's heading"
        page.screenshot(path=artifacts_dir / f"error-summary-{language}.png", full_page=True)
        summary.get_by_role("link", name=text["delete_error"]).click()
        expect(field).to_be_focused()
        assert not PrivacyRequest.objects.filter(user=consumer).exists()

        field.fill("dElEtE")
        page.get_by_role("button", name=text["delete_button"]).click()
        request = PrivacyRequest.objects.get(user=consumer)
        expect(page).to_have_url(f"{live_server.url}/requests/{request.pk}/")
        assert request.kind == RequestKind.DELETION
    finally:
        context.close()
