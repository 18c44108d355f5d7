"""The access page at a glance: the summary sentence and the 90-day chart, from the daily rollups."""

import re
from datetime import UTC, datetime, timedelta

import pytest
import time_machine
from django.urls import reverse

from audit.services import Actor
from consents.services.access import AccessReport, access_events_ingest
from consents.services.consents import consent_grant
from consents.services.partners import partner_subject_ensure
from tests.factories import DataCategoryFactory, PartnerFactory, PurposeFactory, SharingFactory

pytestmark = pytest.mark.django_db

NOW = datetime(2026, 3, 15, 12, 0, tzinfo=UTC)
ZH = {"accept-language": "zh-hans"}


@pytest.fixture
def frozen():
    with time_machine.travel(NOW, tick=False):
        yield


def _report(partner, user, purpose, event_id: str, days_ago: int) -> None:
    subject = partner_subject_ensure(partner=partner, user=user)
    report = AccessReport(
        event_id=event_id,
        subject_id=subject.subject_id,
        purpose=purpose.slug,
        categories=("contact",),
        accessed_at=NOW - timedelta(days=days_ago),
        action="read",
    )
    [result] = access_events_ingest(partner=partner, reports=[report])
    assert result.status == "created", result


@pytest.fixture
def known_accesses(frozen, consumer, other_consumer):
    """Consent since 10 days ago. Glance Bank: 3 covered and 2 flagged in 90 days, 1 flagged 120 days ago;
    Quiet Mail: 1 covered. The other consumer has 4 flagged accesses by Glance Bank, counted nowhere here."""
    contact = DataCategoryFactory(slug="contact")
    purpose = PurposeFactory(slug="offers", notice__categories=[contact])
    bank = PartnerFactory(slug="glance-bank", name="Glance Bank")
    mail = PartnerFactory(slug="quiet-mail", name="Quiet Mail")
    for partner in (bank, mail):
        SharingFactory(partner=partner, purpose=purpose, categories=[contact])
    with time_machine.travel(NOW - timedelta(days=10), tick=False):
        consent_grant(user=consumer, purpose=purpose, actor=Actor.consumer(consumer))
    for n, days in enumerate([1, 2, 3, 20, 30, 120]):
        _report(bank, consumer, purpose, f"mine-{n}", days)
    _report(mail, consumer, purpose, "mine-mail", 5)
    for n in range(4):
        _report(bank, other_consumer, purpose, f"theirs-{n}", n + 1)
    return {"bank": bank, "mail": mail}


def _chart_table(body: str) -> list[tuple[str, str, str]]:
    table = re.search(r'<figure class="access-chart".*?</figure>', body, re.S)
    assert table
    return re.findall(r'<tr><th scope="row">([^<]+)</th><td>(\d+)</td><td>(\d+)</td></tr>', table.group(0))


def test_access_page_opens_with_how_many_accesses_need_attention(consumer_client, known_accesses):
    body = consumer_client.get(reverse("audit:access")).content.decode()
    summary = re.search(r'<p class="access-summary access-summary-attention">(.*?)</p>', body, re.S)
    assert summary
    assert "3 accesses need your attention" in summary.group(1), "2 flagged in 90 days + 1 older; none of theirs"
    assert f'href="{reverse("audit:access_timeline")}?flagged=on"' in summary.group(1)


def test_chart_counts_accesses_per_partner_over_90_days_with_flagged_ones(consumer_client, known_accesses):
    body = consumer_client.get(reverse("audit:access")).content.decode()
    assert _chart_table(body) == [("Glance Bank", "5", "2"), ("Quiet Mail", "1", "0")]
    svg = re.search(r"<svg .*?</svg>", body, re.S)
    assert svg
    assert 'aria-hidden="true"' in svg.group(0)
    # Flagged accesses are hatched and labelled in words, not told apart by colour alone.
    assert svg.group(0).count('fill="url(#access-flagged-hatch)"') == 1
    assert ">5 (2 flagged)</text>" in svg.group(0)
    assert ">1</text>" in svg.group(0)
    assert "<script" not in svg.group(0), "server-rendered, needs no JavaScript"


def test_access_summary_and_chart_in_chinese(consumer_client, known_accesses):
    body = consumer_client.get(reverse("audit:access"), headers=ZH).content.decode()
    assert "有 3 次访问需要您留意" in body
    assert "最近 90 天各合作方的访问次数" in body
    assert ">5 次（2 次被标记）</text>" in body  # noqa: RUF001 (Chinese punctuation)


def test_access_summary_reassures_when_nothing_is_flagged(frozen, consumer_client, consumer, other_consumer):
    contact = DataCategoryFactory(slug="contact")
    purpose = PurposeFactory(slug="offers", notice__categories=[contact])
    partner = PartnerFactory(slug="calm", name="Calm Partner")
    SharingFactory(partner=partner, purpose=purpose, categories=[contact])
    with time_machine.travel(NOW - timedelta(days=10), tick=False):
        consent_grant(user=consumer, purpose=purpose, actor=Actor.consumer(consumer))
    _report(partner, consumer, purpose, "calm-1", 1)
    _report(partner, other_consumer, purpose, "theirs-flagged", 1)
    body = consumer_client.get(reverse("audit:access")).content.decode()
    assert "Every access reported so far was covered by your consent and by what was shared." in body
    assert "accesses need your attention" not in body
    assert "access needs your attention" not in body
    assert _chart_table(body) == [("Calm Partner", "1", "0")]


def test_single_flagged_access_is_worded_in_the_singular(frozen, consumer_client, consumer):
    contact = DataCategoryFactory(slug="contact")
    purpose = PurposeFactory(slug="offers", notice__categories=[contact])
    partner = PartnerFactory(slug="once", name="Once Partner")
    SharingFactory(partner=partner, purpose=purpose, categories=[contact])
    _report(partner, consumer, purpose, "no-consent", 1)
    body = consumer_client.get(reverse("audit:access")).content.decode()
    assert "1 access needs your attention" in body


def test_chart_leaves_out_partners_silent_for_90_days(frozen, consumer_client, consumer):
    contact = DataCategoryFactory(slug="contact")
    purpose = PurposeFactory(slug="offers", notice__categories=[contact])
    partner = PartnerFactory(slug="old", name="Old Partner")
    SharingFactory(partner=partner, purpose=purpose, categories=[contact])
    _report(partner, consumer, purpose, "long-ago", 200)
    body = consumer_client.get(reverse("audit:access")).content.decode()
    assert _chart_table(body) == []
    assert "No partner accessed your data in the last 90 days." in body


def test_access_page_query_count_is_fixed_however_many_partners_and_accesses(
    frozen, consumer_client, consumer, django_assert_num_queries
):
    contact = DataCategoryFactory(slug="contact")
    purpose = PurposeFactory(slug="offers", notice__categories=[contact])

    def add_partner(n: int, accesses: int) -> None:
        partner = PartnerFactory(slug=f"p{n}", name=f"Partner {n}")
        SharingFactory(partner=partner, purpose=purpose, categories=[contact])
        for i in range(accesses):
            _report(partner, consumer, purpose, f"p{n}-{i}", i % 80)

    add_partner(0, 2)
    url = reverse("audit:access")
    consumer_client.get(url)  # warm the session and per-process caches
    with django_assert_num_queries(6) as small:
        consumer_client.get(url)
    for n in range(1, 6):
        add_partner(n, 12)
    with django_assert_num_queries(len(small.captured_queries)):
        body = consumer_client.get(url).content.decode()
    assert len(_chart_table(body)) == 6
