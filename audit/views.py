from __future__ import annotations

import csv
from collections.abc import Iterator
from typing import TYPE_CHECKING

from django.contrib.auth.decorators import login_required
from django.http import HttpResponse, StreamingHttpResponse
from django.shortcuts import render
from django.utils import timezone

from audit.csvsafe import csv_cell
from audit.forms import AccessFilterForm
from audit.glance import access_glance
from audit.models import catalogue
from audit.presenters import activity_entries
from audit.selectors import ACCESS_LOG_COLUMNS, access_events_for, access_overview, access_timeline_page, activity_page
from audit.timestamps import spreadsheet_time
from portal.replica import replica_view

if TYPE_CHECKING:
    from portal.http import AuthenticatedHttpRequest


@login_required
@replica_view
def access_overview_view(request: AuthenticatedHttpRequest) -> HttpResponse:
    rows = access_overview(request.user)
    return render(request, "audit/access.html", {"rows": rows, "glance": access_glance(rows)})


@login_required
@replica_view
def access_timeline(request: AuthenticatedHttpRequest) -> HttpResponse:
    form = AccessFilterForm(request.GET or None, user=request.user)
    page = access_timeline_page(
        request.user, form.to_filter(), after=request.GET.get("after", ""), before=request.GET.get("before", "")
    )
    # The data categories of the page's accesses by name, in the page's language (the log keeps slugs).
    slugs = {slug for event in page.rows for slug in event.categories}
    names = {
        row.slug: row.l10n.name
        for row in catalogue("category").filter(slug__in=slugs).only("slug", "name", "translations")
    }
    for event in page.rows:
        event.category_names = [names.get(slug, slug) for slug in event.categories]  # type: ignore[attr-defined]
    query = request.GET.copy()
    query.pop("after", None)
    query.pop("before", None)
    context = {
        "form": form,
        "events": page.rows,
        "next_cursor": page.older,
        "newer_cursor": page.newer,
        "query": query.urlencode(),
    }
    if request.htmx and request.GET.get("after"):
        # Rows appended below the ones already shown: focus moves to the first of them.
        return render(request, "audit/_timeline_rows.html", context | {"focus_first": True})
    return render(request, "audit/timeline.html", context)


class _Echo:
    def write(self, value: str) -> str:
        return value


@login_required
@replica_view
def access_export_csv(request: AuthenticatedHttpRequest) -> StreamingHttpResponse:
    """The consumer's own access log as CSV, streamed so a long history costs no memory."""
    form = AccessFilterForm(request.GET or None, user=request.user)
    events = access_events_for(request.user, form.to_filter()).select_related("partner", "purpose")
    writer = csv.writer(_Echo())
    # The consumer's zone, read now: the streamed rows are written after the request's zone is reset.
    zone = timezone.get_current_timezone()

    def rows() -> Iterator[str]:
        yield writer.writerow(ACCESS_LOG_COLUMNS)
        for event in events.iterator(chunk_size=2000):
            # Partners write the detail; defuse every cell rather than guess which text could be hostile.
            yield writer.writerow(
                [
                    csv_cell(value)
                    for value in (
                        spreadsheet_time(event.accessed_at, zone),
                        event.partner.name,
                        event.partner.kind,
                        event.purpose.slug,
                        " ".join(event.categories),
                        event.action,
                        event.verdict,
                        event.detail,
                        event.staff_reason,
                        event.staff_reference,
                    )
                ]
            )

    filename = f"data-access-{timezone.localdate():%Y-%m-%d}.csv"
    return StreamingHttpResponse(
        rows(),
        content_type="text/csv; charset=utf-8",
        headers={"Content-Disposition": f'attachment; filename="{filename}"'},
    )


@login_required
@replica_view
def activity(request: AuthenticatedHttpRequest) -> HttpResponse:
    page = activity_page(request.user, after=request.GET.get("after", ""), before=request.GET.get("before", ""))
    context = {"entries": activity_entries(page.rows), "next_cursor": page.older, "newer_cursor": page.newer}
    if request.htmx and request.GET.get("after"):
        return render(request, "audit/_activity_rows.html", context | {"focus_first": True})
    return render(request, "audit/activity.html", context)
