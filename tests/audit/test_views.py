import csv
import io
from datetime import timedelta

import pytest
from django.urls import reverse
from django.utils import timezone

from audit.actions import AuditAction
from audit.services import Actor, event_record
from consents.services.access import AccessReport, access_events_ingest
from consents.services.consents import consent_grant
from consents.services.partners import partner_subject_ensure
from tests.factories import DataCategoryFactory, PartnerFactory, PurposeFactory, SharingFactory

pytestmark = pytest.mark.django_db


def _history(user, partners=2, events=5, purpose_slug="offers", label=None):
    # Partner names and details carry a label that no date, count or id can contain by accident.
    label = label or f"mine{user.pk}"
    contact = DataCategoryFactory(slug="contact")
    purpose = PurposeFactory(slug=purpose_slug, notice__categories=[contact])
    consent_grant(user=user, purpose=purpose, actor=Actor.consumer(user))
    now = timezone.now()
    for p in range(partners):
        partner = PartnerFactory(slug=f"partner-{label}-{p}", name=f"Partner {label}-{p}")
        SharingFactory(partner=partner, purpose=purpose, categories=[contact])
        subject = partner_subject_ensure(partner=partner, user=user)
        reports = [
            AccessReport(
                event_id=f"{label}-{p}-{i}",
                subject_id=subject.subject_id,
                purpose=purpose_slug,
                categories=("contact",),
                accessed_at=now - timedelta(days=i) if i else now,
                action="read",
                detail=f"detail {label}-{p}-{i}",
            )
            for i in range(events)
        ]
        access_events_ingest(partner=partner, reports=reports)


@pytest.mark.parametrize("name", ["audit:access", "audit:access_timeline", "audit:access_csv", "audit:activity"])
def test_pages_require_login(client, name):
    response = client.get(reverse(name))
    assert response.status_code == 302
    assert reverse("account_login") in response.url


def test_access_overview_lists_partners_with_counts_and_flags(consumer_client, consumer):
    _history(consumer)
    response = consumer_client.get(reverse("audit:access"))
    body = response.content.decode()
    assert response.status_code == 200
    assert f"Partner mine{consumer.pk}-0" in body
    assert f"Partner mine{consumer.pk}-1" in body
    rows = response.context["rows"]
    assert [r.events_90 for r in rows] == [5, 5]
    # The events from before the grant (days ago) are flagged: only today's is covered.
    assert [r.flagged_total for r in rows] == [4, 4]


def test_consumer_sees_only_their_own_accesses(consumer_client, consumer, other_consumer):
    _history(other_consumer, purpose_slug="theirs", label="zz-other")
    _history(consumer)
    for name in ["audit:access", "audit:access_timeline", "audit:access_csv"]:
        response = consumer_client.get(reverse(name))
        body = b"".join(response.streaming_content) if response.streaming else response.content
        assert f"mine{consumer.pk}-0".encode() in body, name
        assert b"Partner zz-other-" not in body, name
        assert b"detail zz-other-" not in body, name


def test_timeline_filters_and_keyset_pagination(consumer_client, consumer):
    _history(consumer, partners=1, events=60)
    url = reverse("audit:access_timeline")
    first = consumer_client.get(url)
    assert len(first.context["events"]) == 50
    cursor = first.context["next_cursor"]
    second = consumer_client.get(url, {"after": cursor})
    assert len(second.context["events"]) == 10
    assert not second.context["next_cursor"]
    seen = {e.pk for e in first.context["events"]} | {e.pk for e in second.context["events"]}
    assert len(seen) == 60
    flagged = consumer_client.get(url, {"flagged": "on"})
    assert all(e.is_flagged for e in flagged.context["events"])
    recent = consumer_client.get(url, {"since": (timezone.now() - timedelta(days=2)).date().isoformat()})
    assert len(recent.context["events"]) == 3


def test_timeline_rejects_bad_filters_with_form_errors(consumer_client, consumer):
    _history(consumer, partners=1, events=3)
    response = consumer_client.get(
        reverse("audit:access_timeline"), {"partner": "no-such-partner", "since": "2026-02-30"}
    )
    assert response.status_code == 200
    assert response.context["form"].errors.keys() == {"partner", "since"}


def test_csv_download_contains_the_consumers_log(consumer_client, consumer):
    _history(consumer, partners=1, events=3)
    response = consumer_client.get(reverse("audit:access_csv"))
    assert response["Content-Type"].startswith("text/csv")
    assert "attachment" in response["Content-Disposition"]
    rows = list(csv.reader(io.StringIO(b"".join(response.streaming_content).decode())))
    assert rows[0][0] == "accessed_at"
    assert len(rows) == 4


def _csv_rows(response) -> list[list[str]]:
    return list(csv.reader(io.StringIO(b"".join(response.streaming_content).decode())))


def test_csv_download_defuses_formulas_a_partner_supplied(consumer_client, consumer):
    contact = DataCategoryFactory(slug="contact")
    purpose = PurposeFactory(slug="offers", notice__categories=[contact])
    consent_grant(user=consumer, purpose=purpose, actor=Actor.consumer(consumer))
    partner = PartnerFactory(slug="formula-co", name="@Formula Co")
    SharingFactory(partner=partner, purpose=purpose, categories=[contact])
    subject = partner_subject_ensure(partner=partner, user=consumer)
    report = AccessReport(
        event_id="formula-1",
        subject_id=subject.subject_id,
        purpose="offers",
        categories=("contact",),
        accessed_at=timezone.now(),
        action="read",
        detail='=HYPERLINK("http://x","y")',
    )
    access_events_ingest(partner=partner, reports=[report])

    header, row = _csv_rows(consumer_client.get(reverse("audit:access_csv")))
    cells = dict(zip(header, row, strict=True))
    assert cells["detail"] == """'=HYPERLINK("http://x","y")"""
    assert cells["partner"] == "'@Formula Co"


def test_activity_shows_consent_changes_and_who_made_them(consumer_client, consumer):
    _history(consumer, partners=1, events=1)
    response = consumer_client.get(reverse("audit:activity"))
    [entry] = [e for e in response.context["entries"] if e.action == "consent.granted"]
    assert entry.who == "You"
    assert "Offers" in entry.headline


def test_activity_names_other_actions_by_their_translated_label(consumer_client, consumer):
    event_record(actor=Actor.consumer(consumer), subject=consumer, action=AuditAction.PROFILE_UPDATED)
    event_record(actor=Actor.consumer(consumer), subject=consumer, action="something.new_later")

    english = [e.headline for e in consumer_client.get(reverse("audit:activity")).context["entries"]]
    consumer_client.cookies["django_language"] = "zh-hans"
    chinese = [e.headline for e in consumer_client.get(reverse("audit:activity")).context["entries"]]

    assert english == ["something: new later", "Profile updated"]
    assert chinese[1] == "已更新个人资料"


@pytest.mark.parametrize("name", ["audit:access", "audit:activity"])
def test_page_queries_do_not_grow_with_history(consumer_client, consumer, django_assert_max_num_queries, name):
    _history(consumer, partners=3, events=5)
    with django_assert_max_num_queries(12) as small:
        consumer_client.get(reverse(name))
    _history(consumer, partners=3, events=200, purpose_slug="more")
    with django_assert_max_num_queries(len(small.captured_queries)):
        consumer_client.get(reverse(name))


def test_older_access_pages_link_back_to_the_newer_page_they_came_from(consumer_client, consumer):
    _history(consumer, partners=1, events=60)
    url = reverse("audit:access_timeline")
    first = consumer_client.get(url)
    assert not first.context["newer_cursor"]
    second = consumer_client.get(url, {"after": first.context["next_cursor"]})
    assert second.context["newer_cursor"]
    assert "before=" in second.content.decode()
    back = consumer_client.get(url, {"before": second.context["newer_cursor"]})
    assert [e.pk for e in back.context["events"]] == [e.pk for e in first.context["events"]]
    assert not back.context["newer_cursor"]
    assert back.context["next_cursor"] == first.context["next_cursor"]


def test_older_activity_pages_link_back_to_the_newer_page_they_came_from(consumer_client, consumer):
    for _ in range(55):
        event_record(actor=Actor.consumer(consumer), subject=consumer, action=AuditAction.PROFILE_UPDATED)
    url = reverse("audit:activity")
    first = consumer_client.get(url)
    assert not first.context["newer_cursor"]
    second = consumer_client.get(url, {"after": first.context["next_cursor"]})
    assert len(second.context["entries"]) == 5
    assert "before=" in second.content.decode()
    back = consumer_client.get(url, {"before": second.context["newer_cursor"]})
    assert len(back.context["entries"]) == 50
    assert not back.context["newer_cursor"]
    assert back.context["next_cursor"] == first.context["next_cursor"]


def test_older_rows_loaded_with_htmx_focus_the_first_new_row(consumer_client, consumer):
    _history(consumer, partners=1, events=60)
    url = reverse("audit:access_timeline")
    cursor = consumer_client.get(url).context["next_cursor"]
    fragment = consumer_client.get(url, {"after": cursor}, HTTP_HX_REQUEST="true").content.decode()
    assert fragment.count("autofocus") == 1
    assert fragment.index("autofocus") < fragment.index("</tr>")


def test_csv_download_gives_the_reason_staff_stated_for_opening_the_records(consumer_client, consumer):
    from audit.access import access_event_record_staff
    from audit.staff_access import staff_access_reason_state
    from tests.factories import StaffFactory

    staff = StaffFactory(email="desk@staff.example.com")
    reason = staff_access_reason_state(staff=staff, consumer=consumer, code="support_request", reference="#4821")
    access_event_record_staff(staff=staff, consumer=consumer, what="Opened your consents", records="x", reason=reason)

    header, row = _csv_rows(consumer_client.get(reverse("audit:access_csv")))
    cells = dict(zip(header, row, strict=True))
    assert (cells["staff_reason"], cells["staff_reference"]) == ("support_request", "#4821")


def test_timeline_names_purposes_and_data_in_the_pages_language(consumer_client, consumer):
    from consents.models import DataCategory, Purpose

    _history(consumer, partners=1, events=1)
    DataCategory.objects.filter(slug="contact").update(translations={"zh-hans": {"name": "联系方式"}})
    Purpose.objects.filter(slug="offers").update(name="Offers", translations={"zh-hans": {"name": "个性化优惠"}})
    consumer_client.cookies["django_language"] = "zh-hans"

    response = consumer_client.get(reverse("audit:access_timeline"))

    form = response.context["form"]
    assert dict(form.fields["purpose"].choices)["offers"] == "个性化优惠"
    assert dict(form.fields["category"].choices)["contact"] == "联系方式"
    (event,) = response.context["events"]
    assert event.category_names == ["联系方式"]
    assert '<td role="cell" data-label="数据">联系方式</td>' in response.content.decode()
