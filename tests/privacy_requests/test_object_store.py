"""Exports in an S3-compatible object store (moto's server): stored encrypted and private, downloaded
by the owner only through a short-lived presigned address, and removed from the bucket when purged."""

import io
import time
import zipfile
from datetime import timedelta
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
import time_machine
from botocore.exceptions import ClientError
from django.conf import settings
from django.core.files.base import ContentFile
from django.urls import reverse
from django.utils import timezone

from audit.models import AuditEvent
from privacy_requests.models import PrivacyRequest, RequestStatus, export_upload_to
from privacy_requests.services.deletion import privacy_request_deletion_execute
from privacy_requests.services.export import export_build
from privacy_requests.services.requests import (
    privacy_request_deletion_create,
    privacy_request_export_complete,
    privacy_request_export_create,
    privacy_request_export_start,
    privacy_request_reject,
)
from privacy_requests.storage import export_storage
from privacy_requests.tasks import privacy_exports_purge_expired
from tests.factories import StaffFactory
from tests.privacy_requests.helpers import consumer_data_seed, export_archive, export_json

DOWNLOADED = "privacy_request.downloaded"


def _built(user) -> PrivacyRequest:
    consumer_data_seed(user)
    request = privacy_request_export_create(user=user, language="en")
    export_build(request_id=request.pk)
    request.refresh_from_db()
    assert request.status == RequestStatus.COMPLETED
    return request


def test_export_is_written_to_the_bucket_encrypted_and_private(s3_exports, s3_exports_settings, consumer, media_root):
    # A bucket's own default could be public: every object is written with a private ACL.
    assert s3_exports_settings["OPTIONS"]["default_acl"] == "private"
    request = _built(consumer)
    key = request.result_file.name
    assert s3_exports.keys() == [key]
    head = s3_exports.client.head_object(Bucket=s3_exports.bucket, Key=key)
    assert head["ServerSideEncryption"] == "AES256"
    assert head["ContentLength"] == request.file_size
    grants = s3_exports.client.get_object_acl(Bucket=s3_exports.bucket, Key=key)["Grants"]
    assert [grant["Permission"] for grant in grants] == ["FULL_CONTROL"], "the owner only, no public grant"
    assert grants[0]["Grantee"]["Type"] == "CanonicalUser"
    assert export_json(export_archive(request), "profile")["items"][0]["email"] == consumer.email
    assert not [path for path in media_root.rglob("*") if path.is_file()], "nothing on local disk"
    # Without a signature the bucket refuses the object.
    assert httpx.get(f"{s3_exports.endpoint_url}/{s3_exports.bucket}/{key}").status_code == 403


def test_owner_is_redirected_to_a_short_lived_presigned_address_and_the_download_is_logged(
    s3_exports, reauthenticated_client, consumer
):
    request = _built(consumer)
    response = reauthenticated_client.get(reverse("requests:download", args=[request.pk]))
    assert response.status_code == 302
    assert response["Cache-Control"] == "private, no-store"
    location = urlsplit(response["Location"])
    assert f"{location.scheme}://{location.netloc}" == s3_exports.endpoint_url
    assert location.path == f"/{s3_exports.bucket}/{request.result_file.name}"
    query = parse_qs(location.query)
    assert settings.EXPORT_DOWNLOAD_URL_SECONDS == 60
    assert query["X-Amz-Expires"] == ["60"]
    assert query["X-Amz-Algorithm"] == ["AWS4-HMAC-SHA256"]
    request.refresh_from_db()
    assert request.download_count == 1
    assert AuditEvent.objects.filter(subject=consumer, action=DOWNLOADED).count() == 1

    fetched = httpx.get(response["Location"])
    assert fetched.status_code == 200
    assert fetched.content == s3_exports.read(request.result_file.name)
    assert fetched.headers["content-type"] == "application/zip"
    assert fetched.headers["content-disposition"] == (
        f'attachment; filename="privacy-export-{request.created_at:%Y-%m-%d}.zip"'
    )
    assert fetched.headers["cache-control"] == "private, no-store"
    with zipfile.ZipFile(io.BytesIO(fetched.content)) as archive:
        assert export_json(archive, "profile")["items"][0]["email"] == consumer.email


def test_another_consumer_gets_404_and_no_address_and_nothing_is_logged(
    s3_exports, reauthenticated_client, consumer, other_consumer
):
    request = _built(other_consumer)
    response = reauthenticated_client.get(reverse("requests:download", args=[request.pk]))
    assert response.status_code == 404
    assert "Location" not in response
    assert s3_exports.client.get_bucket_location(Bucket=s3_exports.bucket)  # the store is up, the view said no
    request.refresh_from_db()
    assert request.download_count == 0
    assert not AuditEvent.objects.filter(action=DOWNLOADED).exists()


def test_expired_export_is_removed_from_the_bucket(s3_exports, consumer, django_capture_on_commit_callbacks):
    request = _built(consumer)
    key = request.result_file.name
    with (
        time_machine.travel(timezone.now() + timedelta(days=settings.EXPORT_TTL_DAYS, minutes=1)),
        django_capture_on_commit_callbacks(execute=True),
    ):
        assert privacy_exports_purge_expired() == 1
    assert s3_exports.keys() == []
    with pytest.raises(ClientError) as error:
        s3_exports.client.head_object(Bucket=s3_exports.bucket, Key=key)
    assert error.value.response["Error"]["Code"] == "404"
    request.refresh_from_db()
    assert not request.result_file


def test_export_rejected_while_it_was_built_leaves_no_object(s3_exports, consumer, django_capture_on_commit_callbacks):
    request = privacy_request_export_create(user=consumer, language="en")
    request = privacy_request_export_start(request_id=request.pk)
    # Staff reject the request while the worker writes the file; the worker then stores it.
    privacy_request_reject(request=request, reason="Duplicate request", staff=StaffFactory())
    name = export_storage().save(export_upload_to(request, "export.zip"), ContentFile(b"PK"))
    assert s3_exports.keys() == [name]
    with django_capture_on_commit_callbacks(execute=True):
        assert privacy_request_export_complete(request_id=request.pk, file_name=name, file_size=2) is None
    assert s3_exports.keys() == []


def test_account_deletion_removes_the_export_from_the_bucket(s3_exports, consumer, django_capture_on_commit_callbacks):
    request = _built(consumer)
    assert s3_exports.keys() == [request.result_file.name]
    with django_capture_on_commit_callbacks(execute=True):
        deletion = privacy_request_deletion_create(user=consumer, language="en")
    with (
        time_machine.travel(timezone.now() + timedelta(days=settings.DELETION_GRACE_DAYS, minutes=1)),
        django_capture_on_commit_callbacks(execute=True),
    ):
        assert privacy_request_deletion_execute(request_id=deletion.pk) is not None
    assert s3_exports.keys() == []
    request.refresh_from_db()
    assert not request.result_file


@pytest.mark.worker
@pytest.mark.django_db(transaction=True)
def test_a_worker_writes_the_export_to_the_bucket_and_the_web_process_hands_it_out(
    request, monkeypatch, s3_exports, media_root, reauthenticated_client, consumer
):
    # The worker process reads the same EXPORTS_S3_* variables as production; the test's folder
    # (its MEDIA_ROOT too) must stay empty.
    for name, value in s3_exports.env().items():
        monkeypatch.setenv(name, value)
    worker = request.getfixturevalue("worker_on_test_db")
    reauthenticated_client.post(reverse("requests:export"))
    export = PrivacyRequest.objects.get(user=consumer)
    deadline = time.monotonic() + 90
    while export.status != RequestStatus.COMPLETED and time.monotonic() < deadline:
        assert worker.poll() is None, "the worker died"
        time.sleep(0.5)
        export.refresh_from_db()
    assert export.status == RequestStatus.COMPLETED
    assert s3_exports.keys() == [export.result_file.name]
    assert not [path for path in media_root.rglob("*") if path.is_file()]

    response = reauthenticated_client.get(reverse("requests:download", args=[export.pk]))
    assert response.status_code == 302
    fetched = httpx.get(response["Location"])
    assert fetched.status_code == 200
    assert fetched.content == s3_exports.read(export.result_file.name)
    with zipfile.ZipFile(io.BytesIO(fetched.content)) as archive:
        assert export_json(archive, "profile")["items"][0]["email"] == consumer.email
