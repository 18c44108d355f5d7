"""The staff queue of privacy requests: deadlines first, overdue ones marked, every change through a service."""

from datetime import timedelta
from typing import Any

from django import forms
from django.contrib import admin, messages
from django.contrib.admin.helpers import ACTION_CHECKBOX_NAME
from django.core.exceptions import PermissionDenied
from django.db.models import Count, Q, QuerySet
from django.http import FileResponse, Http404, HttpRequest, HttpResponse, HttpResponseBase
from django.shortcuts import get_object_or_404, render
from django.urls import reverse
from django.utils import timezone
from django.utils.html import format_html
from django.utils.timesince import timesince, timeuntil
from django.utils.translation import gettext
from django.utils.translation import gettext_lazy as _

from audit.admin_access import RecordsStaffAccess
from audit.admin_mixins import ReadOnlyAdminMixin
from consents.errors import DomainError
from portal.admin_history import ReadOnlyHistoryAdmin
from portal.models import User
from privacy_requests.forms import AgentRejectForm, AgentVerifyForm, ExtendForm, RecordAcknowledgementForm, RejectForm
from privacy_requests.models import (
    ACTIVE_STATUSES,
    AgentRequest,
    AgentRequestStatus,
    ConsentProof,
    PartnerTaskState,
    PrivacyRequest,
    PrivacyRequestExtension,
    PrivacyRequestPartnerTask,
)
from privacy_requests.services.agents import agent_request_reject, agent_request_verify
from privacy_requests.services.deletion import partner_task_record
from privacy_requests.services.requests import privacy_request_extend, privacy_request_reject
from privacy_requests.storage import export_storage


class DueFilter(admin.SimpleListFilter):
    title = _("due date")
    parameter_name = "due"

    def lookups(self, request: HttpRequest, model_admin: Any) -> list[tuple[str, Any]]:
        return [
            ("overdue", _("Overdue")),
            ("week", _("Due within 7 days")),
            ("month", _("Due within 30 days")),
            ("later", _("Due later")),
        ]

    def queryset(self, request: HttpRequest, queryset: QuerySet[Any]) -> QuerySet[Any]:
        now = timezone.now()
        open_requests = queryset.filter(status__in=ACTIVE_STATUSES)
        match self.value():
            case "overdue":
                return open_requests.filter(due_at__lte=now)
            case "week":
                return open_requests.filter(due_at__gt=now, due_at__lte=now + timedelta(days=7))
            case "month":
                return open_requests.filter(due_at__gt=now, due_at__lte=now + timedelta(days=30))
            case "later":
                return open_requests.filter(due_at__gt=now + timedelta(days=30))
        return queryset


class MadeByFilter(admin.SimpleListFilter):
    title = _("made by")
    parameter_name = "made_by"

    def lookups(self, request: HttpRequest, model_admin: Any) -> list[tuple[str, Any]]:
        return [("agent", _("An authorised agent")), ("consumer", _("The consumer"))]

    def queryset(self, request: HttpRequest, queryset: QuerySet[Any]) -> QuerySet[Any]:
        match self.value():
            case "agent":
                return queryset.filter(agent_request__isnull=False)
            case "consumer":
                return queryset.filter(agent_request__isnull=True)
        return queryset


class ReadOnlyInline(ReadOnlyAdminMixin, admin.TabularInline):
    extra = 0
    can_delete = False


class PartnerTaskInline(ReadOnlyInline):
    model = PrivacyRequestPartnerTask
    fields = ("partner", "state", "acked_at", "ack_detail_shown", "staff_note_shown", "recorded_by")
    readonly_fields = fields
    show_change_link = True


class ExtensionInline(ReadOnlyInline):
    model = PrivacyRequestExtension
    fields = ("created_at", "months", "days", "previous_due_at", "new_due_at", "reason_shown", "by")
    readonly_fields = fields


def _action_form(
    model_admin: admin.ModelAdmin,
    request: HttpRequest,
    queryset: QuerySet[Any],
    form: forms.Form,
    *,
    action: str,
    title: str,
) -> HttpResponse:
    """The intermediate page of an action that needs input (a reason, a note) before it runs."""
    context = {
        **model_admin.admin_site.each_context(request),
        "title": title,
        "opts": model_admin.model._meta,
        "form": form,
        "queryset": queryset,
        "action": action,
        "action_checkbox_name": ACTION_CHECKBOX_NAME,
    }
    return render(request, "admin/privacy_requests/action_with_input.html", context)


@admin.register(PrivacyRequest)
class PrivacyRequestAdmin(RecordsStaffAccess, ReadOnlyHistoryAdmin):
    def consumer_of(self, obj: PrivacyRequest) -> User:
        return obj.user

    list_display = (
        "short_id",
        "kind",
        "status",
        "jurisdiction",
        "created_at",
        "due_at",
        "deadline",
        "partners_confirmed",
        "made_by",
        "escalated_at",
    )
    list_filter = (
        "kind",
        "status",
        MadeByFilter,
        DueFilter,
        "jurisdiction",
        ("escalated_at", admin.EmptyFieldListFilter),
    )
    ordering = ("due_at",)
    date_hierarchy = "due_at"
    search_fields = ("=id",)
    actions = ("extend", "reject")
    inlines = (PartnerTaskInline, ExtensionInline)
    fields = (
        "id",
        "user",
        "kind",
        "status",
        "jurisdiction",
        "language",
        "created_at",
        "due_at",
        "escalated_at",
        "grace_ends_at",
        "completed_at",
        "cancelled_at",
        "rejected_at",
        "rejection_reason",
        "progress",
        "result_file",
        "file_size",
        "file_expires_at",
        "file_deleted_at",
        "download_count",
        "last_downloaded_at",
    )
    readonly_fields = fields

    class Media:
        css = {"all": ["css/admin_requests.css"]}

    def get_queryset(self, request: HttpRequest) -> QuerySet[PrivacyRequest]:
        done = Q(partner_tasks__state__in=[PartnerTaskState.ACKNOWLEDGED, PartnerTaskState.RECORDED])
        return (
            super()
            .get_queryset(request)
            .select_related("user", "agent_request")
            .annotate(tasks_total=Count("partner_tasks"), tasks_done=Count("partner_tasks", filter=done))
        )

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    @admin.display(description=_("request"), ordering="created_at")
    def short_id(self, obj: PrivacyRequest) -> str:
        return str(obj.pk)[:8]

    @admin.display(description=_("deadline"), ordering="due_at")
    def deadline(self, obj: PrivacyRequest) -> str:
        if obj.is_overdue:
            return format_html(
                '<strong class="request-overdue">⚠ {}</strong>',
                gettext("Overdue by %(time)s") % {"time": timesince(obj.due_at)},
            )
        if obj.is_active:
            return gettext("in %(time)s") % {"time": timeuntil(obj.due_at)}
        return "—"

    @admin.display(description=_("made by"))
    def made_by(self, obj: PrivacyRequest) -> str:
        agent = getattr(obj, "agent_request", None)
        if agent is None:
            return gettext("The consumer")
        return format_html(
            '<strong class="request-agent">{}</strong>', gettext("Agent: %(agent)s") % {"agent": agent.agent_label}
        )

    @admin.display(description=_("partners confirmed"))
    def partners_confirmed(self, obj: Any) -> str:
        return f"{obj.tasks_done}/{obj.tasks_total}" if obj.tasks_total else "—"

    def _staff(self, request: HttpRequest) -> User:
        assert isinstance(request.user, User)
        return request.user

    def has_decide_permission(self, request: HttpRequest) -> bool:
        """Extending or rejecting changes a consumer's legal deadline: its own permission, not view."""
        return request.user.has_perm(f"{self.opts.app_label}.decide_privacyrequest")

    @admin.action(
        description=_("Extend the deadline of the selected requests (reason required)"), permissions=["decide"]
    )
    def extend(self, request: HttpRequest, queryset: QuerySet[PrivacyRequest]) -> HttpResponse | None:
        form = ExtendForm(request.POST if "apply" in request.POST else None)
        if not form.is_valid():
            return _action_form(self, request, queryset, form, action="extend", title=gettext("Extend the deadline"))
        for privacy_request in queryset:
            try:
                extension = privacy_request_extend(
                    request=privacy_request, staff=self._staff(request), **form.cleaned_data
                )
            except DomainError as error:
                self.message_user(request, f"{privacy_request}: {error.message}", messages.ERROR)
            else:
                due = extension.new_due_at.strftime("%Y-%m-%d %H:%M")
                message = gettext("%(request)s: now due %(due)s; the consumer was emailed.")
                self.message_user(request, message % {"request": privacy_request, "due": due}, messages.SUCCESS)
        return None

    @admin.action(description=_("Reject the selected requests (reason required)"), permissions=["decide"])
    def reject(self, request: HttpRequest, queryset: QuerySet[PrivacyRequest]) -> HttpResponse | None:
        form = RejectForm(request.POST if "apply" in request.POST else None)
        if not form.is_valid():
            return _action_form(self, request, queryset, form, action="reject", title=gettext("Reject the request"))
        for privacy_request in queryset:
            try:
                privacy_request_reject(
                    request=privacy_request, staff=self._staff(request), reason=form.cleaned_data["reason"]
                )
            except DomainError as error:
                self.message_user(request, f"{privacy_request}: {error.message}", messages.ERROR)
            else:
                message = gettext("%(request)s: rejected; the consumer was emailed.")
                self.message_user(request, message % {"request": privacy_request}, messages.SUCCESS)
        return None


@admin.register(PrivacyRequestPartnerTask)
class PrivacyRequestPartnerTaskAdmin(ReadOnlyHistoryAdmin):
    list_display = ("request_link", "partner", "state", "acked_at", "request_due_at")
    list_filter = ("state", "partner")
    ordering = ("request__due_at",)
    actions = ("record_acknowledgement",)
    fields = (
        "request",
        "partner",
        "event",
        "state",
        "acked_at",
        "ack_detail_shown",
        "staff_note_shown",
        "recorded_by",
        "created_at",
    )
    readonly_fields = fields

    def get_queryset(self, request: HttpRequest) -> QuerySet[PrivacyRequestPartnerTask]:
        return super().get_queryset(request).select_related("request", "partner")

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    @admin.display(description=_("request"), ordering="request__created_at")
    def request_link(self, obj: PrivacyRequestPartnerTask) -> str:
        url = reverse("admin:privacy_requests_privacyrequest_change", args=[obj.request_id])
        return format_html('<a href="{}">{}</a>', url, obj.request)

    @admin.display(description=_("due by"), ordering="request__due_at")
    def request_due_at(self, obj: PrivacyRequestPartnerTask) -> Any:
        return obj.request.due_at

    def has_record_permission(self, request: HttpRequest) -> bool:
        return request.user.has_perm(f"{self.opts.app_label}.record_privacyrequestpartnertask")

    @admin.action(
        description=_("Record a confirmation received by other means (note required)"), permissions=["record"]
    )
    def record_acknowledgement(
        self, request: HttpRequest, queryset: QuerySet[PrivacyRequestPartnerTask]
    ) -> HttpResponse | None:
        form = RecordAcknowledgementForm(request.POST if "apply" in request.POST else None)
        if not form.is_valid():
            title = gettext("Record a partner's confirmation")
            return _action_form(self, request, queryset, form, action="record_acknowledgement", title=title)
        assert isinstance(request.user, User)
        for task in queryset:
            try:
                partner_task_record(task=task, note=form.cleaned_data["note"], staff=request.user)
            except DomainError as error:
                self.message_user(request, f"{task}: {error.message}", messages.ERROR)
            else:
                self.message_user(request, gettext("%(task)s: recorded.") % {"task": task.partner}, messages.SUCCESS)
        return None


@admin.register(ConsentProof)
class ConsentProofAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    list_display = ("principal_id", "purpose_slug", "notice_version", "event", "issued_at", "retain_until")
    list_filter = ("event", "purpose_slug")
    search_fields = ("=principal_id", "=receipt_sha256")
    ordering = ("-issued_at",)


@admin.register(AgentRequest)
class AgentRequestAdmin(RecordsStaffAccess, ReadOnlyAdminMixin, admin.ModelAdmin):
    """Requests authorised agents made: waiting for the consumer, or for staff to check the agent's authority."""

    def consumer_of(self, obj: AgentRequest) -> User | None:
        return obj.user

    list_display = ("received_at", "kind", "status", "agent_name", "agent_organisation", "user", "privacy_request")
    list_filter = ("status", "kind")
    ordering = ("-received_at",)
    search_fields = ("=id", "=agent_email")
    actions = ("verify", "reject")
    fields = (
        "id",
        "kind",
        "status",
        "user",
        "consumer_email",
        "agent_name",
        "agent_email",
        "agent_organisation",
        "document_link",
        "document_type",
        "document_size",
        "language",
        "received_at",
        "decided_at",
        "decided_by",
        "privacy_request",
    )
    readonly_fields = fields

    def get_queryset(self, request: HttpRequest) -> QuerySet[AgentRequest]:
        # Requests for nobody (no account) are closed at once and hold no document: not staff's queue.
        return super().get_queryset(request).exclude(status=AgentRequestStatus.NO_ACCOUNT).select_related("user")

    def get_urls(self) -> list[Any]:
        from django.urls import path

        view = self.admin_site.admin_view(self.document_view)
        return [path("<uuid:pk>/document/", view, name="privacy_requests_agentrequest_document"), *super().get_urls()]

    def has_verify_permission(self, request: HttpRequest) -> bool:
        """Checking a power of attorney acts on a consumer's data without their confirmation: its own permission."""
        return request.user.has_perm(f"{self.opts.app_label}.verify_agentrequest")

    @admin.display(description=_("permission document"))
    def document_link(self, obj: AgentRequest) -> str:
        if not obj.document_name:
            return "—"
        url = reverse("admin:privacy_requests_agentrequest_document", args=[obj.pk])
        return format_html('<a href="{}">{}</a>', url, gettext("Open the signed permission"))

    def document_view(self, request: HttpRequest, pk: Any) -> HttpResponseBase:
        """The agent's signed permission, for those who may verify it; read from the private storage."""
        if not self.has_verify_permission(request):
            raise PermissionDenied
        agent_request = get_object_or_404(self.get_queryset(request), pk=pk)
        if not agent_request.document_name:
            raise Http404
        self._staff_access_record(request, agent_request, gettext("Opened an authorised agent's permission document"))
        handle = export_storage().open(agent_request.document_name, "rb")
        response = FileResponse(handle, content_type=agent_request.document_type)
        response["Cache-Control"] = "private, no-store"
        response["Content-Security-Policy"] = "sandbox"
        return response

    @admin.action(
        description=_("Verify the agent's power of attorney and carry out the request (note required)"),
        permissions=["verify"],
    )
    def verify(self, request: HttpRequest, queryset: QuerySet[AgentRequest]) -> HttpResponse | None:
        form = AgentVerifyForm(request.POST if "apply" in request.POST else None)
        if not form.is_valid():
            title = gettext("Verify the authorised agent")
            return _action_form(self, request, queryset, form, action="verify", title=title)
        assert isinstance(request.user, User)
        for agent_request in queryset:
            try:
                agent_request_verify(agent_request=agent_request, staff=request.user, note=form.cleaned_data["note"])
            except DomainError as error:
                self.message_user(request, f"{agent_request}: {error.message}", messages.ERROR)
            else:
                self.message_user(
                    request,
                    gettext("%(request)s: verified and carried out.") % {"request": agent_request},
                    messages.SUCCESS,
                )
        return None

    @admin.action(
        description=_("Do not accept the agent's power of attorney and close the request (note required)"),
        permissions=["verify"],
    )
    def reject(self, request: HttpRequest, queryset: QuerySet[AgentRequest]) -> HttpResponse | None:
        form = AgentRejectForm(request.POST if "apply" in request.POST else None)
        if not form.is_valid():
            title = gettext("Do not accept the authorised agent")
            return _action_form(self, request, queryset, form, action="reject", title=title)
        assert isinstance(request.user, User)
        for agent_request in queryset:
            try:
                agent_request_reject(agent_request=agent_request, staff=request.user, note=form.cleaned_data["note"])
            except DomainError as error:
                self.message_user(request, f"{agent_request}: {error.message}", messages.ERROR)
            else:
                self.message_user(
                    request,
                    gettext("%(request)s: closed, nothing done.") % {"request": agent_request},
                    messages.SUCCESS,
                )
        return None
