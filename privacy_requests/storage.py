"""Where export files live: Django's ``exports`` storage (``STORAGES`` in settings).

A folder under ``MEDIA_ROOT`` in the embedded set-up, whose files the portal streams itself; an
S3-compatible bucket in production, from which the owner's browser fetches the file directly
through a short-lived presigned address. Every read, write and delete of an export goes through here.
"""

from django.core.exceptions import ImproperlyConfigured
from django.core.files.storage import FileSystemStorage, Storage, storages
from django.utils.http import content_disposition_header


def export_storage() -> Storage:
    """The storage that holds export files (looked up on each call, so settings overrides apply)."""
    return storages["exports"]


def export_download_url(*, name: str, filename: str) -> str | None:
    """A presigned address that serves the stored file ``name`` as a ``filename`` attachment.

    Valid for ``EXPORT_DOWNLOAD_URL_SECONDS``. ``None`` when the storage is a local folder: the
    portal then streams the file itself. Signing is local, no request reaches the store.
    """
    storage = export_storage()
    if isinstance(storage, FileSystemStorage):
        return None
    # Imported here: boto3 takes about half a second to import, and only processes that use the
    # object store need it.
    from storages.backends.s3 import S3Storage

    if not isinstance(storage, S3Storage):
        raise ImproperlyConfigured("The exports storage must be a FileSystemStorage or an S3Storage.")
    return storage.url(
        name,
        parameters={
            "ResponseContentDisposition": content_disposition_header(as_attachment=True, filename=filename),
            "ResponseContentType": "application/zip",
            "ResponseCacheControl": "private, no-store",
        },
    )
