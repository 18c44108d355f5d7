import time
import zipfile

import pytest
from django.urls import reverse

from privacy_requests.models import PrivacyRequest, RequestStatus
from privacy_requests.storage import export_storage
from tests.privacy_requests.helpers import export_json

pytestmark = [pytest.mark.worker, pytest.mark.django_db(transaction=True)]


def test_real_worker_builds_the_requested_export(worker_on_test_db, reauthenticated_client, consumer):
    response = reauthenticated_client.post(reverse("requests:export"))
    request = PrivacyRequest.objects.get(user=consumer)
    assert response.url == request.get_absolute_url()

    deadline = time.monotonic() + 90
    while request.status != RequestStatus.COMPLETED and time.monotonic() < deadline:
        assert worker_on_test_db.poll() is None, "the worker died"
        time.sleep(0.5)
        request.refresh_from_db()
    assert request.status == RequestStatus.COMPLETED
    assert request.progress == 100
    with export_storage().open(request.result_file.name, "rb") as handle, zipfile.ZipFile(handle) as archive:
        assert export_json(archive, "profile")["items"][0]["email"] == consumer.email
    page = reauthenticated_client.get(reverse("requests:status", args=[request.pk])).content.decode()
    assert reverse("requests:download", args=[request.pk]) in page
