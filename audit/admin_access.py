"""Staff views of data-access events, and recording staff's own access to consumers' records."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from django.contrib import admin
from django.contrib.admin.utils import unquote
from django.contrib.auth import get_user_model
from django.core.exceptions import ObjectDoesNotExist
from django.db.models import QuerySet
from django.http import HttpRequest, HttpResponse
from django.utils.translation import gettext_lazy as _

from audit.access import access_event_record_staff
from audit.admin_mixins import ReadOnlyAdminMixin
from audit.models import AccessEvent, AccessVerdict

if TYPE_CHECKING:
    from portal.models import User


class FlaggedFilter(admin.SimpleListFilter):
    title = _("flagged")
    parameter_name = "flagged"

    def lookups(self, request: HttpRequest, model_admin: Any) -> list[tuple[str, Any]]:
        return [("yes", _("Flagged (not covered)")), ("no", _("Covered"))]

    def queryset(self, request: HttpRequest, queryset: QuerySet[AccessEvent]) -> QuerySet[AccessEvent]:
        if self.value() == "yes":
            return queryset.exclude(verdict=AccessVerdict.COVERED)
        if self.value() == "no":
            return queryset.filter(verdict=AccessVerdict.COVERED)
        return queryset


@admin.register(AccessEvent)
class AccessEventAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    list_display = ("accessed_at", "partner", "user", "purpose", "action", "verdict", "received_at")
    list_filter = (FlaggedFilter, "verdict", "action", "partner", "purpose", ("accessed_at", admin.DateFieldListFilter))
    search_fields = ("user__email", "partner_event_id", "partner__name")
    date_hierarchy = "accessed_at"
    list_select_related = ("partner", "user", "purpose")
    ordering = ("-accessed_at",)


class RecordsStaffAccess:
    """Mixin for ModelAdmins showing a consumer's records: opening one is logged as an access.

    That covers the change view, the history list and (with simple-history) each past version:
    all of them show the consumer's data. ``consumer_of(obj)`` names the consumer an object belongs to.
    """

    access_description = _("Opened in the admin")
    history_access_description = _("Opened its history in the admin")
    version_access_description = _("Opened a past version in the admin")

    def consumer_of(self, obj: Any) -> User | None:
        raise NotImplementedError

    def change_view(
        self, request: HttpRequest, object_id: str, form_url: str = "", extra_context: dict[str, Any] | None = None
    ) -> HttpResponse:
        response: HttpResponse = super().change_view(request, object_id, form_url, extra_context)  # type: ignore[misc]
        if request.method == "GET" and response.status_code == 200:
            obj: Any = getattr(response, "context_data", {}).get("original")
            self._staff_access_record(request, obj, self.access_description)
        return response

    def history_view(
        self, request: HttpRequest, object_id: str, extra_context: dict[str, Any] | None = None
    ) -> HttpResponse:
        response: HttpResponse = super().history_view(request, object_id, extra_context)  # type: ignore[misc]
        if request.method == "GET" and response.status_code == 200:
            model: Any = self.model  # type: ignore[attr-defined]
            obj = model._default_manager.filter(pk=unquote(object_id)).first()
            if obj is None and hasattr(model, "history"):
                # simple-history lists the history of deleted objects too.
                key = {model._meta.pk.attname: unquote(object_id)}
                last = model.history.filter(**key).order_by("-history_date").first()
                obj = last.instance if last is not None else None
            self._staff_access_record(request, obj, self.history_access_description)
        return response

    def history_form_view(
        self, request: HttpRequest, object_id: str, version_id: str, extra_context: dict[str, Any] | None = None
    ) -> HttpResponse:
        """simple-history's view of one past version (only routed on admins that have history)."""
        response: HttpResponse = super().history_form_view(  # type: ignore[misc]
            request, object_id, version_id, extra_context
        )
        if request.method == "GET" and response.status_code == 200:
            model: Any = self.model  # type: ignore[attr-defined]
            key = {model._meta.pk.attname: unquote(object_id)}
            version = model.history.filter(**key, history_id=unquote(version_id)).first()
            self._staff_access_record(
                request, version.instance if version is not None else None, self.version_access_description
            )
        return response

    def _staff_access_record(self, request: HttpRequest, obj: Any, description: Any) -> None:
        try:
            consumer = self.consumer_of(obj) if obj is not None else None
        except ObjectDoesNotExist:  # a past version of a record whose consumer no longer exists
            return
        if consumer is not None and not consumer.is_staff and isinstance(request.user, get_user_model()):
            what = f"{description}: {obj._meta.verbose_name} #{obj.pk}"
            access_event_record_staff(staff=request.user, consumer=consumer, what=str(what))
