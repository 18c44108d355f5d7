"""Consents and their receipts: evidence, so staff read them and never edit them."""

import json
from typing import Any

from django.contrib import admin
from django.db.models import QuerySet
from django.http import HttpRequest
from django.utils.html import format_html
from django.utils.safestring import SafeString
from django.utils.translation import gettext_lazy as _

from audit.admin_access import RecordsStaffAccess
from audit.admin_mixins import ReadOnlyAdminMixin
from consents.models import Consent, ConsentReceipt
from portal.admin_history import ReadOnlyHistoryAdmin
from portal.models import User


def _pretty_json(value: Any) -> SafeString:
    return format_html('<pre class="readonly">{}</pre>', json.dumps(value, indent=2, ensure_ascii=False))


class ConsentReceiptInline(ReadOnlyAdminMixin, admin.TabularInline):
    model = ConsentReceipt
    fields = ("issued_at", "event", "id", "sha256")
    readonly_fields = fields
    extra = 0
    show_change_link = True
    ordering = ("-issued_at",)


@admin.register(Consent)
class ConsentAdmin(RecordsStaffAccess, ReadOnlyAdminMixin, ReadOnlyHistoryAdmin):
    def consumer_of(self, obj: Consent) -> User:
        return obj.user

    list_display = (
        "user",
        "purpose",
        "status",
        "notice_version",
        "method",
        "duration_type",
        "granted_at",
        "expires_at",
        "revoked_at",
        "changed_by",
    )
    list_filter = ("status", "method", "duration_type", "changed_by", "revocation_reason", "purpose")
    list_select_related = ("user", "purpose", "version")
    search_fields = ("user__email", "purpose__name", "purpose__slug")
    date_hierarchy = "updated_at"
    fields = (
        "user",
        "purpose",
        "version",
        "status",
        "method",
        "duration_type",
        "period_days",
        "granted_at",
        "expires_at",
        "revoked_at",
        "revocation_reason",
        "revocation_note",
        "changed_by",
        "reminder_sent_at",
        "updated_at",
    )
    inlines = (ConsentReceiptInline,)

    @admin.display(description=_("notice"), ordering="version__number")
    def notice_version(self, obj: Consent) -> str:
        return f"v{obj.version.number}"


@admin.register(ConsentReceipt)
class ConsentReceiptAdmin(RecordsStaffAccess, ReadOnlyAdminMixin, admin.ModelAdmin):
    def consumer_of(self, obj: ConsentReceipt) -> User:
        return obj.user

    list_display = ("issued_at", "user", "purpose", "event", "id")
    list_filter = ("event", ("issued_at", admin.DateFieldListFilter))
    list_select_related = ("user", "consent__purpose", "app_grant__purpose")
    search_fields = ("user__email", "=id")
    date_hierarchy = "issued_at"
    fields = ("id", "user", "consent", "app_grant", "event", "issued_at", "sha256", "receipt", "jws")
    readonly_fields = ("receipt",)

    def get_queryset(self, request: HttpRequest) -> QuerySet[ConsentReceipt]:
        return super().get_queryset(request).select_related("user", "consent__purpose", "app_grant__purpose")

    @admin.display(description=_("purpose"), ordering="consent__purpose__name")
    def purpose(self, obj: ConsentReceipt) -> str:
        return obj.purpose.name

    @admin.display(description=_("receipt"))
    def receipt(self, obj: ConsentReceipt) -> SafeString:
        return _pretty_json(obj.payload)
