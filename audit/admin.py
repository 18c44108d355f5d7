"""The audit log for staff: read-only, filterable, and verifiable from the admin."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING

from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.db.models import QuerySet
from django.http import HttpRequest, HttpResponseRedirect
from django.urls import URLPattern, path, reverse
from django.utils.html import format_html
from django.utils.safestring import SafeString
from django.utils.translation import gettext_lazy as _
from django.utils.translation import ngettext
from django.views.decorators.http import require_POST

from audit.admin_access import RecordsStaffAccess
from audit.admin_mixins import ReadOnlyAdminMixin
from audit.models import AuditEvent
from audit.presenters import note_shown
from audit.selectors import BreakKind, ChainBreak, audit_chain_breaks, event_note
from audit.verification import audit_verify_all

if TYPE_CHECKING:
    from portal.models import User

BREAK_DESCRIPTIONS = {
    BreakKind.DELETED: _("an event is missing (deleted)"),
    BreakKind.RELINKED: _("the link to the previous event does not match (reordered or deleted)"),
    BreakKind.EDITED: _("the row no longer matches its seal (edited)"),
    BreakKind.TRUNCATED: _("events are missing at the end (truncated)"),
    BreakKind.HEAD_MISSING: _("the record of the chain's last event is missing"),
    BreakKind.NOTE: _("the note beside the event no longer matches it (edited, added or deleted)"),
}

# Checking a handful of chains one by one is cheaper than a pass over the whole log; past this,
# one ordered pass wins.
CHAINS_CHECKED_ONE_BY_ONE = 20


def _report(request: HttpRequest, breaks: list[ChainBreak], chains: int) -> None:
    if not breaks:
        messages.success(
            request,
            ngettext("Verified %(count)d audit chain: intact.", "Verified %(count)d audit chains: all intact.", chains)
            % {"count": chains},
        )
        return
    for found in breaks:
        values = {
            "chain": found.chain,
            "seq": found.seq,
            "event": found.event_id,
            "problem": BREAK_DESCRIPTIONS[found.kind],
        }
        if found.event_id is not None:
            text = _("Audit chain %(chain)s is broken at position %(seq)s (event %(event)s): %(problem)s.")
        else:
            text = _("Audit chain %(chain)s is broken at position %(seq)s: %(problem)s.")
        messages.error(request, text % values)


@admin.register(AuditEvent)
class AuditEventAdmin(RecordsStaffAccess, ReadOnlyAdminMixin, admin.ModelAdmin):
    consumer_field = "subject"

    def consumer_of(self, obj: AuditEvent) -> User | None:
        return obj.subject

    list_display = ("occurred_at", "action", "actor_kind", "actor_label", "subject", "target")
    list_filter = ("actor_kind", "action", ("occurred_at", admin.DateFieldListFilter))
    list_select_related = ("subject",)
    search_fields = ("subject__email",)
    search_help_text = _("Search by the email address of the consumer an event concerns.")
    date_hierarchy = "occurred_at"
    show_full_result_count = False
    fields = (
        "occurred_at",
        "actor_kind",
        "actor_id",
        "actor_label",
        "subject",
        "action",
        "target_type",
        "target_id",
        "details",
        "note_text",
        "chain",
        "seq",
        "prev_hash",
        "hash",
    )
    readonly_fields = ("details", "note_text", "chain", "seq", "prev_hash", "hash", "occurred_at")
    actions = ("verify_chains",)

    @admin.display(description=_("target"))
    def target(self, obj: AuditEvent) -> str:
        return f"{obj.target_type} #{obj.target_id}" if obj.target_type else "—"

    @admin.display(description=_("details"))
    def details(self, obj: AuditEvent) -> SafeString:
        return format_html('<pre class="readonly">{}</pre>', json.dumps(obj.data, indent=2, ensure_ascii=False))

    @admin.display(description=_("note"))
    def note_text(self, obj: AuditEvent) -> str:
        return note_shown(event_note(obj))

    def get_urls(self) -> list[URLPattern]:
        verify = path("verify/", self.admin_site.admin_view(self.verify_all_view), name="audit_auditevent_verify")
        return [verify, *super().get_urls()]

    def has_verify_permission(self, request: HttpRequest) -> bool:
        return request.user.has_perm(f"{self.opts.app_label}.verify_chain")

    @admin.action(description=_("Verify chains"), permissions=["verify"])
    def verify_chains(self, request: HttpRequest, queryset: QuerySet[AuditEvent]) -> None:
        """Verify every chain that one of the selected events belongs to, from its first event to its head."""
        chains = set(queryset.order_by().values_list("chain", flat=True).distinct())
        if len(chains) <= CHAINS_CHECKED_ONE_BY_ONE:
            breaks = [found for chain in sorted(chains) for found in audit_chain_breaks(chain)]
        else:
            breaks = [found for found in audit_chain_breaks() if found.chain in chains]
        _report(request, breaks, len(chains))

    def verify_all_view(self, request: HttpRequest) -> HttpResponseRedirect:
        return _verify_all(request, self)


@require_POST
def _verify_all(request: HttpRequest, model_admin: AuditEventAdmin) -> HttpResponseRedirect:
    if not model_admin.has_verify_permission(request):
        raise PermissionDenied
    breaks = audit_verify_all()
    chains = AuditEvent.objects.order_by().values("chain").distinct().count()
    _report(request, breaks, chains)
    return HttpResponseRedirect(reverse("admin:audit_auditevent_changelist"))
