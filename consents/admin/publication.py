"""Publication runs, read-only: how far a material notice has got through the consents it affects."""

from django.contrib import admin
from django.db.models import QuerySet
from django.http import HttpRequest
from django.utils.formats import number_format
from django.utils.text import format_lazy
from django.utils.translation import gettext_lazy as _

from audit.admin_mixins import ReadOnlyAdminMixin
from consents.models import PublicationRun, PublicationRunState
from portal.timezones import format_datetime


def publication_progress(run: PublicationRun) -> str:
    """``1,200 / 5,000 (24%) · Running · finishes about <time>`` for a run, in the active language."""
    progress = format_lazy(
        _("{done} / {total} ({percent}%) · {state}"),
        done=number_format(run.done, force_grouping=True),
        total=number_format(run.total, force_grouping=True),
        percent=run.percent,
        state=run.get_state_display(),
    )
    eta = run.eta()
    if eta is not None:
        return str(format_lazy(_("{progress} · finishes about {eta}"), progress=progress, eta=format_datetime(eta)))
    return str(progress)


@admin.register(PublicationRun)
class PublicationRunAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    list_display = ("version", "progress", "state", "started_at", "updated_at", "finished_at", "has_error")
    list_filter = ("state",)
    list_select_related = ("version__purpose",)
    fields = (
        "version",
        "progress",
        "state",
        "total",
        "done",
        "last_consent_id",
        "actor_label",
        "started_at",
        "updated_at",
        "finished_at",
        "error",
    )
    readonly_fields = fields

    def get_queryset(self, request: HttpRequest) -> QuerySet[PublicationRun]:
        return super().get_queryset(request).select_related("version__purpose")

    @admin.display(description=_("progress"))
    def progress(self, obj: PublicationRun) -> str:
        return publication_progress(obj)

    @admin.display(description=_("failed batch"), boolean=True)
    def has_error(self, obj: PublicationRun) -> bool:
        return obj.state == PublicationRunState.RUNNING and bool(obj.error)
