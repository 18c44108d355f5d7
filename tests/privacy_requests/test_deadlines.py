from datetime import UTC, datetime

import pytest
import time_machine

from consents.errors import DomainError
from privacy_requests.deadlines import due_at_compute, months_add
from privacy_requests.models import RequestStatus
from privacy_requests.services.requests import (
    privacy_request_export_create,
    privacy_request_extend,
    privacy_request_reject,
)
from tests.factories import StaffFactory, UserFactory

RECEIVED = datetime(2027, 1, 31, 10, 30, tzinfo=UTC)


@pytest.mark.parametrize(
    ("moment", "months", "expected"),
    [
        (datetime(2027, 1, 31, 10, 30, tzinfo=UTC), 1, datetime(2027, 2, 28, 10, 30, tzinfo=UTC)),
        (datetime(2028, 1, 31, 10, 30, tzinfo=UTC), 1, datetime(2028, 2, 29, 10, 30, tzinfo=UTC)),
        (datetime(2027, 3, 15, 8, 0, tzinfo=UTC), 1, datetime(2027, 4, 15, 8, 0, tzinfo=UTC)),
        (datetime(2027, 11, 30, 8, 0, tzinfo=UTC), 3, datetime(2028, 2, 29, 8, 0, tzinfo=UTC)),
        (datetime(2027, 12, 5, 8, 0, tzinfo=UTC), 1, datetime(2028, 1, 5, 8, 0, tzinfo=UTC)),
    ],
)
def test_calendar_months_keep_the_day_or_clamp_to_the_month_end(moment, months, expected):
    assert months_add(moment, months) == expected


@pytest.mark.parametrize(
    ("jurisdiction", "expected"),
    [
        ("gdpr", datetime(2027, 2, 28, 10, 30, tzinfo=UTC)),
        ("ccpa", datetime(2027, 3, 17, 10, 30, tzinfo=UTC)),
        ("other", datetime(2027, 3, 2, 10, 30, tzinfo=UTC)),
    ],
)
def test_due_date_follows_the_consumers_privacy_law(db, jurisdiction, expected):
    user = UserFactory(jurisdiction=jurisdiction)
    with time_machine.travel(RECEIVED, tick=False):
        request = privacy_request_export_create(user=user, language="en")
    assert request.jurisdiction == jurisdiction
    assert request.due_at == expected
    assert due_at_compute(received_at=RECEIVED, jurisdiction=jurisdiction) == expected


def test_jurisdiction_is_copied_so_a_later_profile_change_keeps_the_deadline(db):
    user = UserFactory(jurisdiction="ccpa")
    request = privacy_request_export_create(user=user, language="en")
    user.jurisdiction = "gdpr"
    user.save()
    request.refresh_from_db()
    assert request.jurisdiction == "ccpa"


def _request(jurisdiction: str):
    with time_machine.travel(RECEIVED, tick=False):
        return privacy_request_export_create(user=UserFactory(jurisdiction=jurisdiction), language="en")


def test_gdpr_extends_by_up_to_two_more_months_in_total(db):
    staff = StaffFactory()
    request = _request("gdpr")
    privacy_request_extend(request=request, months=1, days=0, reason="Many partners involved", staff=staff)
    request.refresh_from_db()
    assert request.due_at == datetime(2027, 3, 31, 10, 30, tzinfo=UTC)
    privacy_request_extend(request=request, months=1, days=0, reason="Still complex", staff=staff)
    request.refresh_from_db()
    assert request.due_at == datetime(2027, 4, 30, 10, 30, tzinfo=UTC)
    with pytest.raises(DomainError) as error:
        privacy_request_extend(request=request, months=1, days=0, reason="More", staff=staff)
    assert error.value.code == "extension_limit"
    request.refresh_from_db()
    assert request.due_at == datetime(2027, 4, 30, 10, 30, tzinfo=UTC)
    assert request.extensions.count() == 2


@pytest.mark.parametrize(("months", "days"), [(3, 0), (0, 10)])
def test_gdpr_refuses_extensions_beyond_its_months(db, months, days):
    request = _request("gdpr")
    with pytest.raises(DomainError) as error:
        privacy_request_extend(request=request, months=months, days=days, reason="Complex", staff=StaffFactory())
    assert error.value.code == "extension_limit"
    assert not request.extensions.exists()


def test_ccpa_extends_once_by_up_to_45_days(db):
    staff = StaffFactory()
    request = _request("ccpa")
    with pytest.raises(DomainError):
        privacy_request_extend(request=request, months=0, days=46, reason="Complex", staff=staff)
    privacy_request_extend(request=request, months=0, days=45, reason="Complex", staff=staff)
    request.refresh_from_db()
    assert request.due_at == datetime(2027, 5, 1, 10, 30, tzinfo=UTC)
    with pytest.raises(DomainError) as error:
        privacy_request_extend(request=request, months=0, days=1, reason="Again", staff=staff)
    assert error.value.code == "extension_limit"


def test_other_jurisdictions_extend_once_by_up_to_30_days(db):
    staff = StaffFactory()
    request = _request("other")
    with pytest.raises(DomainError):
        privacy_request_extend(request=request, months=1, days=0, reason="Complex", staff=staff)
    privacy_request_extend(request=request, months=0, days=30, reason="Complex", staff=staff)
    request.refresh_from_db()
    assert request.due_at == datetime(2027, 4, 1, 10, 30, tzinfo=UTC)


@pytest.mark.parametrize("reason", ["", "   "])
def test_extension_needs_a_reason(db, reason):
    request = _request("gdpr")
    with pytest.raises(DomainError) as error:
        privacy_request_extend(request=request, months=1, days=0, reason=reason, staff=StaffFactory())
    assert error.value.code == "reason_required"
    request.refresh_from_db()
    assert request.due_at == datetime(2027, 2, 28, 10, 30, tzinfo=UTC)


def test_closed_requests_cannot_be_extended(db):
    staff = StaffFactory()
    request = privacy_request_reject(request=_request("gdpr"), reason="Identity could not be verified", staff=staff)
    assert request.status == RequestStatus.REJECTED
    with pytest.raises(DomainError) as error:
        privacy_request_extend(request=request, months=1, days=0, reason="Late", staff=staff)
    assert error.value.code == "not_open"
    assert not request.extensions.exists()
