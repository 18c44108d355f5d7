"""Admin for the outbox: watch deliveries, re-drive dead letters, re-enable a disabled partner webhook.

Outbox rows are records of what was told to whom, so they are read-only here; staff change them only
through the actions, which call the services and leave an audit event.
"""

import json
from typing import Any

from django.contrib import admin, messages
from django.db.models import QuerySet
from django.http import HttpRequest
from django.utils.html import format_html
from django.utils.translation import gettext_lazy as _
from django.utils.translation import ngettext

from audit.admin_mixins import ReadOnlyAdminMixin
from audit.services import Actor
from consents.errors import DomainError
from consents.models import DeliveryAttempt, OutboxEvent, Partner
from consents.services.delivery import outbox_event_redrive, partner_webhook_enable


class DeliveryAttemptInline(ReadOnlyAdminMixin, admin.TabularInline):
    model = DeliveryAttempt
    extra = 0
    can_delete = False
    fields = ("attempted_at", "outcome", "status_code", "duration_ms", "error")
    readonly_fields = fields
    ordering = ("-attempted_at",)


def _webhooks_enable(modeladmin: admin.ModelAdmin, request: HttpRequest, partners: QuerySet[Partner]) -> None:
    enabled = 0
    for partner in partners.filter(webhook_disabled_at__isnull=False):
        partner_webhook_enable(partner=partner, actor=Actor.staff(request.user))  # type: ignore[arg-type]
        enabled += 1
    if enabled:
        modeladmin.message_user(
            request,
            ngettext(
                "Re-enabled %(count)d webhook. Re-drive its feed-only events to send them now.",
                "Re-enabled %(count)d webhooks. Re-drive their feed-only events to send them now.",
                enabled,
            )
            % {"count": enabled},
            messages.SUCCESS,
        )
    else:
        modeladmin.message_user(request, _("None of these webhooks was disabled."), messages.INFO)


@admin.action(description=_("Re-enable the webhook"), permissions=["change"])
def partner_webhook_enable_action(modeladmin: admin.ModelAdmin, request: HttpRequest, queryset: QuerySet) -> None:
    """For ``PartnerAdmin.actions``: turn the selected partners' disabled webhooks back on."""
    _webhooks_enable(modeladmin, request, queryset)


@admin.register(OutboxEvent)
class OutboxEventAdmin(admin.ModelAdmin):
    list_display = (
        "created_at",
        "event_type",
        "partner",
        "status",
        "attempts",
        "next_attempt_at",
        "delivered_at",
        "ack_status",
        "endpoint",
    )
    list_filter = ("status", "event_type", "ack_status", "partner")
    list_select_related = ("partner",)
    search_fields = ("partner__name", "partner__slug", "subject__subject_id")
    date_hierarchy = "created_at"
    ordering = ("-created_at",)
    list_per_page = 50
    actions = ("redrive", "webhook_enable")
    inlines = (DeliveryAttemptInline,)
    fields = (
        "id",
        "event_type",
        "partner",
        "endpoint",
        "subject",
        "created_at",
        "status",
        "attempts",
        "next_attempt_at",
        "delivered_at",
        "last_error",
        "acked_at",
        "ack_status",
        "ack_detail",
        "payload_pretty",
    )
    readonly_fields = fields

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def get_queryset(self, request: HttpRequest) -> QuerySet[OutboxEvent]:
        return super().get_queryset(request).select_related("partner", "subject")

    @admin.display(description=_("webhook"))
    def endpoint(self, event: OutboxEvent) -> str:
        partner = event.partner
        if not partner.webhook_url:
            return str(_("none (feed only)"))
        if partner.webhook_disabled_at:
            return str(_("disabled since %(when)s") % {"when": f"{partner.webhook_disabled_at:%Y-%m-%d %H:%M} UTC"})
        return partner.webhook_url

    @admin.display(description=_("event as sent"))
    def payload_pretty(self, event: OutboxEvent) -> str:
        return format_html("<pre>{}</pre>", json.dumps(event.payload, indent=2, ensure_ascii=False))

    @admin.action(description=_("Re-drive: send the selected events again"), permissions=["change"])
    def redrive(self, request: HttpRequest, queryset: QuerySet[OutboxEvent]) -> None:
        sent, problems = 0, []
        for event in queryset.select_related("partner"):
            try:
                outbox_event_redrive(event=event, actor=Actor.staff(request.user))  # type: ignore[arg-type]
            except DomainError as exc:
                problems.append(exc.message)
            else:
                sent += 1
        if sent:
            self.message_user(
                request,
                ngettext("Queued %(count)d event for delivery.", "Queued %(count)d events for delivery.", sent)
                % {"count": sent},
                messages.SUCCESS,
            )
        for problem in sorted(set(problems)):
            self.message_user(request, problem, messages.WARNING)

    @admin.action(description=_("Re-enable the partner's webhook"), permissions=["change"])
    def webhook_enable(self, request: HttpRequest, queryset: QuerySet[OutboxEvent]) -> None:
        _webhooks_enable(self, request, Partner.objects.filter(pk__in=queryset.values("partner_id")))
