"""Issue 11 in a real browser, in English and Simplified Chinese: the access page at a glance, times in the
consumer's zone, and the trust links and notification settings."""

# ruff: noqa: RUF001 (the Chinese texts use Chinese punctuation)
from datetime import timedelta
from zoneinfo import ZoneInfo

import pytest
from django.utils import formats, timezone, translation
from playwright.sync_api import Browser, BrowserContext, expect

from audit.services import Actor
from consents.services.access import AccessReport, access_events_ingest
from consents.services.consents import consent_grant
from consents.services.partners import partner_subject_ensure
from portal.models import User
from privacy_requests.models import PrivacyRequest
from tests.browser.test_phones import LANGUAGES, _sign_in
from tests.factories import PrivacyRequestFactory

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

TEXT = {
    "en": {
        "summary": "1 access needs your attention: a partner used your data without your consent or beyond what was "
        "shared.",
        "chart": "Accesses per partner, last 90 days",
        "flagged_count": "1 (1 flagged)",
        "legend": "Solid: covered by your consent. Hatched, with the number flagged: accesses that need your "
        "attention.",
        "in_days": "{date} (in 42 days)",
        "period": "A limited period of 3 months, then it ends by itself.",
        "privacy": "Privacy notice",
        "accessibility": "Accessibility statement",
        "password": "Change your password",
        "material": "Email me when a notice changes and needs my decision",
        "flagged": "Email me when a partner accesses my data without my consent",
        "digest": "Send me a monthly summary of who accessed my data",
        "save": "Save email settings",
        "saved": "Your email settings are saved.",
    },
    "zh-hans": {
        "summary": "有 1 次访问需要您留意：合作方在未经您同意或超出共享范围的情况下使用了您的数据。",
        "chart": "最近 90 天各合作方的访问次数",
        "flagged_count": "1 次（1 次被标记）",
        "legend": "实心：在您的同意范围内。斜线并标注被标记次数：需要您留意的访问。",
        "in_days": "{date}（42 天后）",
        "period": "限定期限为 3 个月，到期后自动结束。",
        "privacy": "隐私告知",
        "accessibility": "无障碍声明",
        "password": "更改密码",
        "material": "声明变更且需要我重新决定时给我发邮件",
        "flagged": "合作方未经我同意访问我的数据时给我发邮件",
        "digest": "每月给我发送一份谁访问了我的数据的摘要",
        "save": "保存邮件设置",
        "saved": "您的邮件设置已保存。",
    },
}


def _context(browser: Browser, live_server, user, language: str, **options) -> BrowserContext:
    context = browser.new_context(viewport={"width": 1280, "height": 900}, **options)
    context.add_cookies([{"name": "django_language", "value": language, "url": live_server.url}])
    _sign_in(context, live_server, user)
    return context


def _report(partner, user, event_id: str, purpose: str, category: str) -> None:
    subject = partner_subject_ensure(partner=partner, user=user)
    report = AccessReport(
        event_id=event_id,
        subject_id=subject.subject_id,
        purpose=purpose,
        categories=(category,),
        accessed_at=timezone.now(),
        action="read",
    )
    access_events_ingest(partner=partner, reports=[report])


@pytest.mark.parametrize("language", LANGUAGES)
def test_access_page_opens_with_a_summary_and_a_chart_that_works_without_javascript(
    browser: Browser, live_server, consumer, consent_catalogue, artifacts_dir, language
):
    bureau, adco = consent_catalogue["bureau"], consent_catalogue["adco"]
    consent_grant(user=consumer, purpose=consent_catalogue["credit"], actor=Actor.consumer(consumer))
    # Two accesses the consent covers; one to a purpose the consumer never agreed to, which is flagged.
    _report(bureau, consumer, "covered-1", "credit-check", "transactions")
    _report(bureau, consumer, "covered-2", "credit-check", "transactions")
    _report(adco, consumer, "flagged-1", "advertising-partners", "browsing")
    text = TEXT[language]
    context = _context(browser, live_server, consumer, language, java_script_enabled=False)
    try:
        page = context.new_page()
        page.goto(f"{live_server.url}/access/")
        summary = page.locator(".access-summary")
        expect(summary).to_have_text(text["summary"])
        expect(summary.get_by_role("link")).to_have_attribute("href", "/access/events/?flagged=on")
        assert page.evaluate(
            "() => document.querySelector('.access-summary').getBoundingClientRect().top"
            " < document.querySelector('.access-chart').getBoundingClientRect().top"
        ), "the summary comes first"

        chart = page.locator("figure.access-chart")
        expect(chart.locator("figcaption")).to_have_text(text["chart"])
        svg = chart.locator("svg")
        expect(svg).to_be_visible()
        expect(svg).to_have_attribute("aria-hidden", "true")
        bars = svg.locator("g.access-chart-row")
        expect(bars).to_have_count(2)
        # Busiest first; the flagged access is drawn hatched and counted in words.
        expect(bars.nth(0).locator("text")).to_have_text(["Credit Bureau Ltd", "2"])
        expect(bars.nth(1).locator("text")).to_have_text(["AdCo Media", text["flagged_count"]])
        expect(bars.nth(0).locator('rect[fill="url(#access-flagged-hatch)"]')).to_have_count(0)
        expect(bars.nth(1).locator('rect[fill="url(#access-flagged-hatch)"]')).to_have_count(1)
        expect(chart.locator(".access-chart-legend")).to_have_text(text["legend"])

        # The text equivalent says the same to a screen reader.
        table = chart.locator("table")
        expect(table.locator("caption")).to_have_text(text["chart"])
        rows = table.locator("tbody tr").evaluate_all("rows => rows.map(r => [...r.cells].map(c => c.textContent))")
        assert rows == [["Credit Bureau Ltd", "2", "0"], ["AdCo Media", "1", "1"]]
        page.screenshot(path=artifacts_dir / f"access-glance-{language}.png", full_page=True)
    finally:
        context.close()


@pytest.mark.parametrize("language", LANGUAGES)
def test_times_are_in_the_consumers_zone_deadlines_count_days_and_durations_are_in_words(
    browser: Browser, live_server, consumer, consent_catalogue, language
):
    # India has no daylight saving time: its abbreviation is IST on any date, and its half-hour offset
    # shows the time was converted rather than printed in UTC.
    zone = ZoneInfo("Asia/Kolkata")
    User.objects.filter(pk=consumer.pk).update(time_zone="Asia/Kolkata")
    received = timezone.now() - timedelta(days=3)
    request = PrivacyRequestFactory(user=consumer, created_at=received, due_at=received + timedelta(days=45))
    with translation.override(language):
        shown_received = formats.date_format(received.astimezone(zone), "DATETIME_FORMAT") + " IST"
        due_date = formats.date_format(request.due_at.astimezone(zone).date(), "DATE_FORMAT")
    text = TEXT[language]
    context = _context(browser, live_server, consumer, language, timezone_id="America/Los_Angeles")
    try:
        page = context.new_page()
        page.goto(f"{live_server.url}/requests/{request.pk}/")
        facts = page.locator("dl.facts dd")
        expect(facts.nth(0)).to_have_text(shown_received)
        expect(page.locator("dl.facts dd", has_text=due_date)).to_contain_text(text["in_days"].format(date=due_date))

        page.goto(f"{live_server.url}/consents/")
        expect(page.locator("#purpose-credit-check")).to_contain_text(text["period"])
    finally:
        context.close()


@pytest.mark.parametrize("language", LANGUAGES)
def test_footer_trust_links_resolve_and_the_profile_links_password_change_and_saves_notifications(
    browser: Browser, live_server, consumer, artifacts_dir, language
):
    text = TEXT[language]
    context = _context(browser, live_server, consumer, language)
    try:
        page = context.new_page()
        page.goto(f"{live_server.url}/")
        footer = page.locator("footer.site-footer")
        for name in ("privacy", "accessibility"):
            with page.expect_navigation() as navigation:
                footer.get_by_role("link", name=text[name]).click()
            response = navigation.value
            assert response is not None
            assert response.status == 200, f"{name}: {page.url}"
            expect(page.get_by_role("heading", level=1)).to_have_text(text[name])
            page.go_back()

        page.goto(f"{live_server.url}/profile/")
        page.get_by_role("link", name=text["password"]).click()
        expect(page).to_have_url(f"{live_server.url}/accounts/password/change/")
        expect(page.locator('input[name="oldpassword"]')).to_be_visible()

        page.goto(f"{live_server.url}/profile/")
        material, flagged, digest = (page.get_by_label(text[key]) for key in ("material", "flagged", "digest"))
        expect(material).to_be_checked()
        expect(flagged).to_be_checked()
        expect(digest).not_to_be_checked()
        flagged.uncheck()
        digest.check()
        page.get_by_role("button", name=text["save"]).click()

        expect(page).to_have_url(f"{live_server.url}/profile/#notifications")
        expect(page.get_by_text(text["saved"])).to_be_visible()
        expect(material).to_be_checked()
        expect(flagged).not_to_be_checked()
        expect(digest).to_be_checked()
        page.screenshot(path=artifacts_dir / f"profile-notifications-{language}.png", full_page=True)
        saved = User.objects.get(pk=consumer.pk)
        assert (saved.notify_material_changes, saved.notify_flagged_access, saved.monthly_digest) == (True, False, True)
    finally:
        context.close()


@pytest.mark.parametrize("language", LANGUAGES)
def test_the_export_progress_region_announces_only_changes(browser: Browser, live_server, consumer, language):
    """The live region polls every 2 s but is replaced only when the progress moved (the poll answers 204)."""
    export = PrivacyRequestFactory(user=consumer, kind="export", status="processing", progress=10)
    context = _context(browser, live_server, consumer, language)
    page = context.new_page()
    page.goto(f"{live_server.url}/requests/{export.pk}/")
    expect(page.locator("#export-progress")).to_have_attribute("value", "10")
    # Count every change screen readers would hear: nodes added to or removed from the live region.
    page.evaluate(
        """() => {
            window.liveChanges = 0;
            const region = document.querySelector('[aria-live="polite"]');
            new MutationObserver((records) => { window.liveChanges += records.length; })
                .observe(region, {childList: true, subtree: true, characterData: true});
        }"""
    )

    with page.expect_response(lambda r: "/status" in r.url and r.status == 204):
        pass  # at least one poll answered "nothing changed"
    page.wait_for_timeout(2500)  # and another
    assert page.evaluate("window.liveChanges") == 0

    PrivacyRequest.objects.filter(pk=export.pk).update(progress=60)
    expect(page.locator("#export-progress")).to_have_attribute("value", "60", timeout=10_000)
    changes = page.evaluate("window.liveChanges")
    page.wait_for_timeout(4500)  # two more polls with nothing new
    assert changes > 0
    assert page.evaluate("window.liveChanges") == changes
    context.close()
