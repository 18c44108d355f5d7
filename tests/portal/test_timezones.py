"""The consumer's time zone: chosen on the profile or taken from the browser, and every time they read in it."""

import csv
import io
import json
import re
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest
import time_machine
from django.urls import reverse
from django.utils import translation

from audit.actions import AuditAction
from audit.models import AuditEvent
from audit.services import Actor
from consents.services.access import AccessReport, access_events_ingest
from consents.services.consents import consent_grant
from consents.services.partners import partner_subject_ensure
from portal.models import User
from portal.services import time_zone_prefill
from portal.timezones import duration_words, format_datetime, relative_days, user_zone
from privacy_requests.services.export import export_build
from privacy_requests.services.requests import privacy_request_export_create
from tests.factories import DataCategoryFactory, PartnerFactory, PrivacyRequestFactory, PurposeFactory, SharingFactory
from tests.privacy_requests.helpers import export_archive, export_json

# 01:05:07 UTC on 3 December: already the afternoon of the 3rd in Auckland (NZDT, +13) and still the
# afternoon of the 2nd in Los Angeles (PST, -8), so the date itself differs between the two zones.
NOW = datetime(2026, 12, 3, 1, 5, 7, tzinfo=UTC)
AUCKLAND, LOS_ANGELES = "Pacific/Auckland", "America/Los_Angeles"
SHOWN = {
    (AUCKLAND, "en"): "3 Dec 2026, 14:05 NZDT",
    (AUCKLAND, "zh-hans"): "2026年12月3日 14:05 NZDT",
    (LOS_ANGELES, "en"): "2 Dec 2026, 17:05 PST",
    (LOS_ANGELES, "zh-hans"): "2026年12月2日 17:05 PST",
}
IN_CSV = {AUCKLAND: "2026-12-03 14:05:07 NZDT", LOS_ANGELES: "2026-12-02 17:05:07 PST"}
ISO_LOCAL = {AUCKLAND: "2026-12-03T14:05:07+13:00", LOS_ANGELES: "2026-12-02T17:05:07-08:00"}


@pytest.fixture(autouse=True)
def _no_language_left_active() -> Iterator[None]:
    # A request leaves its language active in the thread; a later test that records a receipt outside
    # a request would take Chinese from a test here.
    yield
    translation.deactivate()


def _zone_set(user: User, zone: str) -> None:
    User.objects.filter(pk=user.pk).update(time_zone=zone)


def _profile_data(**changes: str) -> dict[str, str]:
    return {"first_name": "Ada", "last_name": "Lovelace", "jurisdiction": "gdpr", "time_zone": AUCKLAND} | changes


def _access_at(user: User, when: datetime) -> None:
    """An access reported at ``when``, a little after it (partners cannot report accesses in the future)."""
    contact = DataCategoryFactory(slug="contact")
    purpose = PurposeFactory(slug="offers", notice__categories=[contact])
    consent_grant(user=user, purpose=purpose, actor=Actor.consumer(user))
    partner = PartnerFactory(slug="zone-partner", name="Zone Partner")
    SharingFactory(partner=partner, purpose=purpose, categories=[contact])
    subject = partner_subject_ensure(partner=partner, user=user)
    report = AccessReport(
        event_id="zone-1",
        subject_id=subject.subject_id,
        purpose="offers",
        categories=("contact",),
        accessed_at=when,
        action="read",
        detail="",
    )
    with time_machine.travel(when + timedelta(minutes=1), tick=False):
        access_events_ingest(partner=partner, reports=[report])


# --- Formatting: one path for times, deadlines and durations -------------------------------------


@pytest.mark.parametrize(("zone", "language"), list(SHOWN))
def test_a_time_reads_in_the_zone_with_its_abbreviation_and_the_languages_date_format(zone, language):
    user = User(time_zone=zone)
    with translation.override(language):
        assert format_datetime(NOW, user_zone(user)) == SHOWN[zone, language]


def test_a_zone_without_a_letter_abbreviation_says_its_utc_offset():
    with translation.override("en"):
        assert format_datetime(NOW, user_zone(User(time_zone="Asia/Dubai"))) == "3 Dec 2026, 05:05 UTC+04"


def test_an_unknown_or_unusable_zone_falls_back_to_the_sites():
    assert user_zone(User(time_zone="")).key == "UTC"
    assert user_zone(User(time_zone="Mars/Olympus")).key == "UTC"
    assert user_zone(None).key == "UTC"


@pytest.mark.parametrize(
    ("days", "en", "zh"),
    [
        (1095, "3 years", "3 年"),
        (365, "1 year", "1 年"),
        (180, "6 months", "6 个月"),
        (90, "3 months", "3 个月"),
        (30, "30 days", "30 天"),
        (7, "7 days", "7 天"),
        (1, "1 day", "1 天"),
        (395, "1 year and 1 month", "1 年 1 个月"),
        (400, "1 year and 35 days", "1 年 35 天"),
    ],
)
def test_durations_are_written_in_words_in_both_languages(days, en, zh):
    with translation.override("en"):
        assert duration_words(days) == en
    with translation.override("zh-hans"):
        assert duration_words(days) == zh


@pytest.mark.parametrize(
    ("zone", "when", "expected"),
    [
        # At 12:30 UTC on 1 December it is already 2 December in Auckland, still 1 December in Los Angeles.
        (AUCKLAND, datetime(2026, 12, 2, 9, 0, tzinfo=UTC), "today"),
        (LOS_ANGELES, datetime(2026, 12, 2, 9, 0, tzinfo=UTC), "in 1 day"),
        (AUCKLAND, datetime(2026, 12, 10, 9, 0, tzinfo=UTC), "in 8 days"),
        (AUCKLAND, datetime(2026, 11, 28, 9, 0, tzinfo=UTC), "4 days ago"),
        (LOS_ANGELES, datetime(2026, 11, 28, 9, 0, tzinfo=UTC), "3 days ago"),
    ],
)
def test_days_from_today_count_calendar_days_in_the_consumers_zone(zone, when, expected):
    with time_machine.travel(datetime(2026, 12, 1, 12, 30, tzinfo=UTC), tick=False), translation.override("en"):
        assert relative_days(when, user_zone(User(time_zone=zone))) == expected


# --- Choosing the zone on the profile -----------------------------------------------------------


def test_profile_offers_the_zones_grouped_under_an_accessible_label(consumer_client):
    body = consumer_client.get(reverse("profile")).content.decode()
    assert '<label for="id_time_zone">Time zone' in body
    assert '<optgroup label="Pacific">' in body
    assert f'<option value="{AUCKLAND}">Auckland (UTC+' in body
    assert "Not chosen: times are shown in UTC" in body


def test_profile_names_the_zones_in_the_page_language_and_keeps_their_iana_ids(consumer_client):
    body = consumer_client.get(reverse("profile"), headers={"accept-language": "zh-hans"}).content.decode()
    assert '<option value="Asia/Shanghai">上海 (UTC+08:00)</option>' in body
    assert '<option value="America/New_York">纽约 (UTC' in body
    assert f'<option value="{AUCKLAND}">奥克兰 (UTC+' in body
    assert ">Shanghai (" not in body


def test_profile_change_saves_the_zone_and_records_which_field_changed(consumer_client, consumer):
    response = consumer_client.post(reverse("profile"), _profile_data(time_zone=LOS_ANGELES))
    assert response.status_code == 302
    consumer.refresh_from_db()
    assert consumer.time_zone == LOS_ANGELES
    event = AuditEvent.objects.filter(subject=consumer, action=AuditAction.PROFILE_UPDATED).latest("seq")
    assert "time_zone" in event.data["fields"]
    assert LOS_ANGELES not in json.dumps(event.data)


def test_profile_can_go_back_to_no_zone(consumer_client, consumer):
    _zone_set(consumer, AUCKLAND)
    consumer_client.post(reverse("profile"), _profile_data(time_zone=""))
    consumer.refresh_from_db()
    assert consumer.time_zone == ""


@pytest.mark.parametrize("language", ["en", "zh-hans"])
def test_profile_refuses_a_name_that_is_no_zone(consumer_client, consumer, language):
    consumer_client.cookies["django_language"] = language
    response = consumer_client.post(reverse("profile"), _profile_data(time_zone="Mars/Olympus"))
    assert response.status_code == 400
    assert {"en": "Select a valid choice.", "zh-hans": "选择一个有效的选项"}[language] in response.content.decode()
    consumer.refresh_from_db()
    assert consumer.time_zone == ""


# --- The browser's zone: at signup and on first visit --------------------------------------------


def test_browser_zone_is_taken_while_the_consumer_has_none(consumer_client, consumer):
    response = consumer_client.post(reverse("profile_time_zone"), {"time_zone": AUCKLAND})
    assert response.status_code == 200
    assert response.json() == {"time_zone": AUCKLAND, "taken": True}
    consumer.refresh_from_db()
    assert consumer.time_zone == AUCKLAND
    assert AuditEvent.objects.filter(
        subject=consumer, action=AuditAction.PROFILE_UPDATED, data={"fields": ["time_zone"]}
    ).exists()


def test_browser_zone_never_replaces_one_the_consumer_has(consumer_client, consumer):
    _zone_set(consumer, AUCKLAND)
    response = consumer_client.post(reverse("profile_time_zone"), {"time_zone": LOS_ANGELES})
    assert response.json() == {"time_zone": AUCKLAND, "taken": False}
    consumer.refresh_from_db()
    assert consumer.time_zone == AUCKLAND


@pytest.mark.parametrize(
    ("language", "error"),
    [("en", "“Mars/Olympus” is not a time zone we know."), ("zh-hans", "我们不认识“Mars/Olympus”这个时区。")],
)
def test_browser_zone_that_is_no_zone_is_refused_with_the_reason(consumer_client, consumer, language, error):
    consumer_client.cookies["django_language"] = language
    response = consumer_client.post(reverse("profile_time_zone"), {"time_zone": "Mars/Olympus"})
    assert response.status_code == 400
    assert response.json() == {"error": error}
    consumer.refresh_from_db()
    assert consumer.time_zone == ""


def test_browser_zone_sets_only_the_signed_in_consumers_own(client, consumer, other_consumer):
    client.force_login(other_consumer)
    client.post(reverse("profile_time_zone"), {"time_zone": AUCKLAND})
    consumer.refresh_from_db()
    other_consumer.refresh_from_db()
    assert (consumer.time_zone, other_consumer.time_zone) == ("", AUCKLAND)


def test_browser_zone_needs_a_signed_in_consumer_and_a_post(client, consumer):
    assert client.post(reverse("profile_time_zone"), {"time_zone": AUCKLAND}).status_code == 302
    client.force_login(consumer)
    assert client.get(reverse("profile_time_zone")).status_code == 405
    consumer.refresh_from_db()
    assert consumer.time_zone == ""
    assert not AuditEvent.objects.filter(subject=consumer, action=AuditAction.PROFILE_UPDATED).exists()


def test_pages_ask_the_browser_for_its_zone_only_while_it_is_unknown(consumer_client, consumer):
    url = reverse("profile_time_zone")
    assert f'data-prefill-url="{url}"' in consumer_client.get(reverse("home")).content.decode()
    _zone_set(consumer, AUCKLAND)
    assert "data-prefill-url" not in consumer_client.get(reverse("home")).content.decode()


def test_signup_takes_the_browsers_zone_from_the_hidden_field(client, db):
    form = client.get(reverse("account_signup")).content.decode()
    assert 'type="hidden" name="time_zone"' in form
    password = "correct horse battery staple 42"
    data = {"email": "zone@example.com", "password1": password, "password2": password}
    client.post(reverse("account_signup"), data | {"time_zone": LOS_ANGELES})
    client.post(reverse("account_signup"), data | {"email": "nozone@example.com", "time_zone": "Mars/Olympus"})
    zones = dict(
        User.objects.filter(email__in=["zone@example.com", "nozone@example.com"]).values_list("email", "time_zone")
    )
    assert zones == {"zone@example.com": LOS_ANGELES, "nozone@example.com": ""}


# --- Pages, CSV and export in the consumer's zone ---------------------------------------------------


@pytest.mark.parametrize(("zone", "language"), list(SHOWN))
def test_activity_page_shows_local_time_with_its_abbreviation(consumer_client, consumer, zone, language):
    with time_machine.travel(NOW, tick=False):
        time_zone_prefill(user=consumer, time_zone=zone, actor=Actor.consumer(consumer))
    consumer_client.cookies["django_language"] = language
    body = consumer_client.get(reverse("audit:activity")).content.decode()
    assert SHOWN[zone, language] in body
    # The machine-readable attribute keeps the exact instant, with the zone's offset.
    assert f'datetime="{ISO_LOCAL[zone]}"' in body


def test_pages_use_the_sites_zone_until_the_consumer_has_one(client, consumer):
    with time_machine.travel(NOW, tick=False):
        client.force_login(consumer)
        client.post(reverse("profile"), _profile_data(time_zone=""))
        body = client.get(reverse("audit:activity")).content.decode()
    assert "3 Dec 2026, 01:05 UTC" in body


@pytest.mark.parametrize("zone", [AUCKLAND, LOS_ANGELES])
def test_access_csv_writes_local_time_with_its_abbreviation(consumer_client, consumer, zone):
    _zone_set(consumer, zone)
    _access_at(consumer, NOW)
    response = consumer_client.get(reverse("audit:access_csv"))
    header, row = list(csv.reader(io.StringIO(b"".join(response.streaming_content).decode())))
    assert dict(zip(header, row, strict=True))["accessed_at"] == IN_CSV[zone]


@pytest.mark.usefixtures("media_root")
@pytest.mark.parametrize(("zone", "language"), [(AUCKLAND, "zh-hans"), (LOS_ANGELES, "en")])
def test_export_csv_and_readme_are_local_while_the_json_stays_utc(consumer, zone, language):
    _zone_set(consumer, zone)
    _access_at(consumer, NOW)
    with time_machine.travel(NOW, tick=False):
        request = privacy_request_export_create(user=consumer, language=language)
        export_build(request_id=request.pk)
    request.refresh_from_db()
    archive = export_archive(request)
    readme = archive.read("README.txt").decode()
    assert SHOWN[zone, language] in readme
    assert zone in readme
    rows = list(csv.DictReader(io.StringIO(archive.read("access_events.csv").decode("utf-8-sig"))))
    assert [row["accessed_at"] for row in rows] == [IN_CSV[zone]]
    assert [item["accessed_at"] for item in export_json(archive, "access_events")["items"]] == [
        "2026-12-03T01:05:07+00:00"
    ]


@pytest.mark.parametrize(
    ("zone", "language", "due", "expected"),
    [
        (AUCKLAND, "en", datetime(2026, 12, 2, 9, 0, tzinfo=UTC), "2 Dec 2026 (today)"),
        (LOS_ANGELES, "en", datetime(2026, 12, 2, 9, 0, tzinfo=UTC), "2 Dec 2026 (in 1 day)"),
        (LOS_ANGELES, "zh-hans", datetime(2026, 12, 2, 9, 0, tzinfo=UTC), "2026年12月2日（1 天后）"),  # noqa: RUF001
        (AUCKLAND, "en", datetime(2026, 11, 28, 9, 0, tzinfo=UTC), "28 Nov 2026 (4 days overdue)"),
        (AUCKLAND, "zh-hans", datetime(2026, 11, 28, 9, 0, tzinfo=UTC), "2026年11月28日（已逾期 4 天）"),  # noqa: RUF001
    ],
)
def test_requests_list_gives_the_deadline_date_and_the_days_left(client, consumer, zone, language, due, expected):
    _zone_set(consumer, zone)
    received = datetime(2026, 11, 1, 12, 0, tzinfo=UTC)
    PrivacyRequestFactory(user=consumer, created_at=received, due_at=due)
    client.cookies["django_language"] = language
    # Signed in at the travelled time too, so that a clock started long before cannot expire the session.
    with time_machine.travel(datetime(2026, 12, 1, 12, 30, tzinfo=UTC), tick=False):
        client.force_login(consumer)
        body = client.get(reverse("requests:list")).content.decode()
    assert expected in body


@pytest.mark.parametrize(("language", "label"), [("en", "Profile"), ("zh-hans", "个人资料")])
def test_top_nav_links_to_the_profile_and_marks_it_current(consumer_client, language, label):
    headers = {"accept-language": language}
    home = consumer_client.get(reverse("home"), headers=headers).content.decode()
    profile = consumer_client.get(reverse("profile"), headers=headers).content.decode()

    nav = re.compile(r'<nav aria-label="[^"]+">.*?</nav>', re.S)
    assert f'<a href="{reverse("profile")}">{label}</a>' in nav.search(home).group(0)
    assert f'<a href="{reverse("profile")}" aria-current="page">{label}</a>' in nav.search(profile).group(0)
