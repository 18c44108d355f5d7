"""Staff views of data-access events, and staff's own access to consumers' records: the reason asked
for first (``staff_access_reason_view``), then each opening recorded with it."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, cast

from django.conf import settings
from django.contrib import admin
from django.contrib.admin.utils import unquote
from django.contrib.auth import get_user_model
from django.core.exceptions import ObjectDoesNotExist, PermissionDenied, ValidationError
from django.db.models import QuerySet
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import get_object_or_404
from django.template.response import TemplateResponse
from django.urls import URLPattern, path, reverse
from django.utils.http import url_has_allowed_host_and_scheme, urlencode
from django.utils.translation import gettext
from django.utils.translation import gettext_lazy as _

from audit.access import access_event_record_staff
from audit.admin_mixins import ReadOnlyAdminMixin
from audit.forms import StaffAccessReasonForm
from audit.models import AccessEvent, AccessVerdict
from audit.staff_access import staff_access_reason_current, staff_access_reason_state

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


class RecordsStaffAccess:
    """Mixin for ModelAdmins showing a consumer's records: opening one needs a stated reason and is logged.

    That covers the change view, the history list and (with simple-history) each past version:
    all of them show the consumer's data. Without a current reason for that consumer (GET or POST),
    the staff member is sent to the reason form and back. ``consumer_of(obj)`` names the consumer an
    object belongs to. Lists stay open (a queue filtered by status or date shows lines of many people's
    records and is how staff work); a list searched, or filtered on the consumer, down to one consumer's
    records shows that person's records, so it is gated (and recorded) like a change page, unless
    ``gate_lists`` is off.
    """

    access_description = _("Opened in the admin")
    history_access_description = _("Opened its history in the admin")
    version_access_description = _("Opened a past version in the admin")
    list_access_description = _("Listed in the admin")
    # Whether a list searched, or filtered on ``consumer_field``, down to one consumer's records is gated too.
    gate_lists = True
    consumer_field = "user"

    def consumer_of(self, obj: Any) -> User | None:
        raise NotImplementedError

    def change_view(
        self, request: HttpRequest, object_id: str, form_url: str = "", extra_context: dict[str, Any] | None = None
    ) -> HttpResponse:
        obj = self._current(object_id)
        if (gate := self._gate(request, obj)) is not None:
            return gate
        response: HttpResponse = super().change_view(request, object_id, form_url, extra_context)  # type: ignore[misc]
        if request.method == "GET" and response.status_code == 200:
            self._staff_access_record(request, obj, self.access_description)
        return response

    def history_view(
        self, request: HttpRequest, object_id: str, extra_context: dict[str, Any] | None = None
    ) -> HttpResponse:
        obj = self._current(object_id)
        if obj is None and hasattr(self.model, "history"):  # type: ignore[attr-defined]
            # simple-history lists the history of deleted objects too.
            last = self._versions(object_id).order_by("-history_date").first()
            obj = last.instance if last is not None else None
        if (gate := self._gate(request, obj)) is not None:
            return gate
        response: HttpResponse = super().history_view(request, object_id, extra_context)  # type: ignore[misc]
        if request.method == "GET" and response.status_code == 200:
            self._staff_access_record(request, obj, self.history_access_description)
        return response

    def history_form_view(
        self, request: HttpRequest, object_id: str, version_id: str, extra_context: dict[str, Any] | None = None
    ) -> HttpResponse:
        """simple-history's view of one past version (only routed on admins that have history)."""
        version = self._versions(object_id).filter(history_id=unquote(version_id)).first()
        obj = version.instance if version is not None else None
        if (gate := self._gate(request, obj)) is not None:
            return gate
        response: HttpResponse = super().history_form_view(  # type: ignore[misc]
            request, object_id, version_id, extra_context
        )
        if request.method == "GET" and response.status_code == 200:
            self._staff_access_record(request, obj, self.version_access_description)
        return response

    def delete_view(
        self, request: HttpRequest, object_id: str, extra_context: dict[str, Any] | None = None
    ) -> HttpResponse:
        """The confirmation page lists everything of the consumer's that would go with the object."""
        obj = self._current(object_id)
        if (gate := self._gate(request, obj, delete=True)) is not None:
            return gate
        response: HttpResponse = super().delete_view(request, object_id, extra_context)  # type: ignore[misc]
        return response

    def changelist_view(self, request: HttpRequest, extra_context: dict[str, Any] | None = None) -> HttpResponse:
        response: HttpResponse = super().changelist_view(request, extra_context)  # type: ignore[misc]
        changelist = (getattr(response, "context_data", None) or {}).get("cl")
        if not self.gate_lists or changelist is None or not self._narrowed_to_a_person(changelist):
            return response
        consumers = {c for c in (self._consumer(obj) for obj in changelist.result_list) if c is not None}
        if len(consumers) != 1:
            return response
        consumer = consumers.pop()
        if (gate := _reason_gate(request, consumer)) is not None:
            return gate
        if request.method == "GET":
            opts: Any = self.opts  # type: ignore[attr-defined]
            self._record(
                request, consumer, f"{self.list_access_description}: {opts.verbose_name_plural}", opts.label_lower
            )
        return response

    def _narrowed_to_a_person(self, changelist: Any) -> bool:
        """Searched (by email, name or id), or filtered on the consumer field; a status filter is not."""
        person = {self.consumer_field, f"{self.consumer_field}_id"}
        return bool(changelist.query) or any(key.split("__")[0] in person for key in changelist.get_filters_params())

    def _gate(self, request: HttpRequest, obj: Any, *, delete: bool = False) -> HttpResponse | None:
        """The reason form, for someone allowed the page (the others get the admin's own refusal)."""
        model_admin: Any = self
        allowed = (
            model_admin.has_delete_permission(request, obj)
            if delete
            else model_admin.has_view_or_change_permission(request, obj)
        )
        return _reason_gate(request, self._consumer(obj)) if allowed else None

    def _current(self, object_id: str) -> Any:
        model: Any = self.model  # type: ignore[attr-defined]
        try:
            return model._default_manager.filter(pk=unquote(object_id)).first()
        except (ValidationError, ValueError):  # not a key of this model: the admin answers as for a missing one
            return None

    def _versions(self, object_id: str) -> Any:
        model: Any = self.model  # type: ignore[attr-defined]
        return model.history.filter(**{model._meta.pk.attname: unquote(object_id)})

    def _consumer(self, obj: Any) -> User | None:
        """The consumer ``obj`` belongs to; None for staff's own records and for what no one owns."""
        try:
            consumer = self.consumer_of(obj) if obj is not None else None
        except ObjectDoesNotExist:  # a past version of a record whose consumer no longer exists
            return None
        return consumer if consumer is not None and not consumer.is_staff else None

    def _staff_access_record(self, request: HttpRequest, obj: Any, description: Any) -> None:
        consumer = self._consumer(obj)
        if consumer is not None:
            what = f"{description}: {obj._meta.verbose_name} #{obj.pk}"
            self._record(request, consumer, what, obj._meta.label_lower)

    def _record(self, request: HttpRequest, consumer: User, what: str, records: str) -> None:
        if isinstance(request.user, get_user_model()):
            access_event_record_staff(
                staff=request.user,
                consumer=consumer,
                what=what,
                records=records,
                reason=staff_access_reason_current(staff=request.user, consumer=consumer),
            )


@admin.register(AccessEvent)
class AccessEventAdmin(RecordsStaffAccess, ReadOnlyAdminMixin, admin.ModelAdmin):
    def consumer_of(self, obj: AccessEvent) -> User:
        return obj.user

    list_display = ("accessed_at", "partner", "user", "purpose", "action", "verdict", "received_at")
    list_filter = (FlaggedFilter, "verdict", "action", "partner", "purpose", ("accessed_at", admin.DateFieldListFilter))
    search_fields = ("user__email", "partner_event_id", "partner__name")
    date_hierarchy = "accessed_at"
    list_select_related = ("partner", "user", "purpose")
    ordering = ("-accessed_at",)

    def get_urls(self) -> list[URLPattern]:
        # Any staff member who may open some consumer's records reaches it (checked in the view), not
        # only those who may read the access log: it hangs here because audit owns the reasons.
        reason = path(
            "reason/",
            self.admin_site.admin_view(lambda request: staff_access_reason_view(request, self.admin_site)),
            name="audit_staff_access_reason",
        )
        return [reason, *super().get_urls()]


def _reason_gate(request: HttpRequest, consumer: User | None) -> HttpResponse | None:
    """A redirect to the reason form when the staff member has no current reason for this consumer."""
    if consumer is None or not isinstance(request.user, get_user_model()):
        return None
    if staff_access_reason_current(staff=request.user, consumer=consumer) is not None:
        return None
    query = urlencode({"consumer": str(consumer.pk), "next": request.get_full_path()})
    return HttpResponseRedirect(f"{reverse('admin:audit_staff_access_reason')}?{query}")


def staff_access_reason_view(request: HttpRequest, site: admin.AdminSite) -> HttpResponse:
    """Ask for the reason to open one consumer's records, then go on to the page that was asked for."""
    if not any(
        isinstance(model_admin, RecordsStaffAccess) and model_admin.has_view_permission(request)
        for model_admin in site._registry.values()
    ):
        raise PermissionDenied
    consumer_id = request.GET.get("consumer", "")
    consumer = get_object_or_404(get_user_model(), pk=consumer_id if consumer_id.isdigit() else None, is_staff=False)
    next_url = request.GET.get("next", "")
    if not next_url.startswith(reverse("admin:index")) or not url_has_allowed_host_and_scheme(
        next_url, allowed_hosts={request.get_host()}
    ):
        next_url = reverse("admin:portal_user_change", args=[consumer.pk])
    form = StaffAccessReasonForm(request.POST if request.method == "POST" else None, consumer=consumer)
    if form.is_valid():
        staff_access_reason_state(
            staff=cast("User", request.user),
            consumer=consumer,
            code=form.cleaned_data["code"],
            reference=form.cleaned_data["reference"],
        )
        return HttpResponseRedirect(next_url)
    context = {
        **site.each_context(request),
        "title": gettext("Why are you opening this person's records?"),
        "form": form,
        "consumer": consumer,
        "minutes": settings.STAFF_ACCESS_REASON_MINUTES,
    }
    return TemplateResponse(request, "admin/audit/staff_access_reason.html", context)
