"""The consumer's copy of their data: a ZIP of JSON and CSV files, streamed so memory stays flat.

The export is a list of sections (``SECTIONS``, in ``export_sections.py``); each writes
``<name>.json`` and ``<name>.csv`` from one pass over its rows and is described in ``README.txt``.
Rows come from ``.iterator()``, the JSON entry is written straight into the archive while the CSV
goes to a temporary file that is copied in afterwards, and the archive itself is a temporary file
handed to the ``exports`` storage (``privacy_requests/storage.py``). Adding a kind of data to the
export means adding one section.
"""

import csv
import io
import json
import tempfile
import zipfile
from datetime import tzinfo
from typing import IO, Any

from django.core.files import File
from django.template.loader import render_to_string
from django.utils import timezone, translation

from audit.csvsafe import csv_cell
from audit.timestamps import spreadsheet_time
from portal.models import User
from portal.timezones import user_zone, zone_override
from privacy_requests.models import PrivacyRequest, export_upload_to
from privacy_requests.services.export_sections import SECTIONS, Instant, Section
from privacy_requests.services.requests import (
    privacy_request_export_complete,
    privacy_request_export_start,
    privacy_request_progress_set,
)
from privacy_requests.storage import export_storage

PROGRESS_EVERY = 5000


class _Progress:
    """Reports progress as a whole percentage of all rows, writing only when it moves."""

    def __init__(self, request_id: Any, total: int) -> None:
        self.request_id, self.total, self.finished, self.reported = request_id, max(total, 1), 0, -1

    def report(self, section_rows: int) -> None:
        # 99 at most: the request reaches 100 only once the file is stored.
        percent = min(99, (self.finished + section_rows) * 100 // self.total)
        if percent != self.reported:
            privacy_request_progress_set(request_id=self.request_id, progress=percent)
            self.reported = percent

    def section_done(self, rows: int) -> None:
        self.finished += rows


def _section_write(archive: zipfile.ZipFile, section: Section, user: User, progress: _Progress) -> int:
    exported_at = timezone.now().isoformat()
    zone = user_zone(user)
    rows = 0
    with tempfile.TemporaryFile("w+", encoding="utf-8", newline="") as csv_file:
        writer = csv.writer(csv_file)
        writer.writerow(section.columns)
        with io.TextIOWrapper(archive.open(f"{section.name}.json", "w", force_zip64=True), encoding="utf-8") as out:
            out.write(f'{{"section": {json.dumps(section.name)}, "exported_at": {json.dumps(exported_at)}, "items": [')
            columns, write, writerow, dumps = section.columns, out.write, writer.writerow, json.dumps
            for row in section.rows(user):
                write(("," if rows else "") + "\n" + dumps(row, ensure_ascii=False, default=str))
                writerow([_csv_value(row.get(column), zone) for column in columns])
                rows += 1
                if rows % PROGRESS_EVERY == 0:
                    progress.report(rows)
            out.write("\n]}\n")
        csv_file.flush()
        csv_file.seek(0)
        with archive.open(f"{section.name}.csv", "w", force_zip64=True) as entry:
            # Byte order mark so spreadsheet programs read the UTF-8 correctly.
            entry.write(b"\xef\xbb\xbf")
            while chunk := csv_file.read(64 * 1024):
                entry.write(chunk.encode("utf-8"))
    progress.report(rows)
    progress.section_done(rows)
    return rows


def _csv_value(value: Any, zone: tzinfo) -> Any:
    # Spreadsheets are read by people: their times are in the consumer's zone, the JSON's stay in UTC.
    return spreadsheet_time(value.moment, zone) if isinstance(value, Instant) else csv_cell(value)


def _readme(request: PrivacyRequest, counts: dict[str, int]) -> str:
    with translation.override(request.language), zone_override(request.user):
        return render_to_string(
            "privacy_requests/export_readme.txt",
            {
                "request": request,
                "sections": [(s, counts[s.name]) for s in SECTIONS],
                "exported_at": timezone.now(),
                "time_zone": user_zone(request.user).key,
            },
        )


def export_write(*, request: PrivacyRequest, out: IO[bytes]) -> dict[str, int]:
    """Write the whole export of the request's consumer as a ZIP into ``out``; the number of rows per section."""
    user = request.user
    progress = _Progress(request.pk, sum(section.count(user) for section in SECTIONS))
    counts = {}
    # Level 1: the text still shrinks about eightfold, for a fraction of the default level's CPU time.
    with zipfile.ZipFile(out, "w", compression=zipfile.ZIP_DEFLATED, compresslevel=1) as archive:
        for section in SECTIONS:
            counts[section.name] = _section_write(archive, section, user, progress)
        archive.writestr("README.txt", _readme(request, counts))
    return counts


def export_build(*, request_id: Any) -> PrivacyRequest | None:
    """Build the export for a request, store it and complete the request (the Celery task's body)."""
    request = privacy_request_export_start(request_id=request_id)
    if request is None:
        return None
    with tempfile.TemporaryFile() as archive_file:
        export_write(request=request, out=archive_file)
        size = archive_file.tell()
        archive_file.seek(0)
        name = export_storage().save(export_upload_to(request, "export.zip"), File(archive_file))
    return privacy_request_export_complete(request_id=request.pk, file_name=name, file_size=size)
