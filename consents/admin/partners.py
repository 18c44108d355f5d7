"""Partners (data recipients) and what each receives for which purpose."""

from typing import Any

from django import forms
from django.contrib import admin, messages
from django.db.models import QuerySet
from django.http import HttpRequest
from django.utils.translation import gettext_lazy as _
from django.utils.translation import ngettext

from audit.services import Actor
from consents.admin.outbox import partner_webhook_enable_action
from consents.models import Partner, Sharing
from consents.services import partner_webhook_secret_rotate, secret_fingerprint
from portal.admin_history import ReadOnlyHistoryAdmin
from portal.http import AuthenticatedHttpRequest


@admin.register(Partner)
class PartnerAdmin(ReadOnlyHistoryAdmin):
    # Signing secrets never appear in lists, are never edited by hand, and are rotated by the action.
    list_display = ("name", "kind", "country", "status", "webhook_url", "created_at")
    list_filter = ("kind", "status", "country")
    search_fields = ("name", "slug")
    prepopulated_fields = {"slug": ("name",)}
    fieldsets = (
        (None, {"fields": ("name", "slug", "kind", "country", "policy_url", "status")}),
        (
            _("Webhooks"),
            {"fields": ("webhook_url", "webhook_disabled_at", "signing_secret", "previous_secret_fingerprint")},
        ),
        (_("Record"), {"fields": ("created_at",)}),
    )
    readonly_fields = ("webhook_disabled_at", "signing_secret", "previous_secret_fingerprint", "created_at")
    actions = ("rotate_webhook_secret", partner_webhook_enable_action)

    def has_delete_permission(self, request: HttpRequest, obj: Partner | None = None) -> bool:
        # Deleting would take the partner's delivery and acknowledgement records with it; suspend instead.
        return False

    @admin.display(description=_("webhook signing secret"))
    def signing_secret(self, obj: Partner) -> str:
        return obj.webhook_secret if obj.pk else "—"

    @admin.display(description=_("previous signing secret"))
    def previous_secret_fingerprint(self, obj: Partner) -> str:
        if not obj.webhook_secret_previous:
            return str(_("none"))
        return str(_("still accepted, fingerprint %(fingerprint)s")) % {
            "fingerprint": secret_fingerprint(obj.webhook_secret_previous)
        }

    @admin.action(description=_("Rotate webhook signing secret"), permissions=["change"])
    def rotate_webhook_secret(self, request: AuthenticatedHttpRequest, queryset: QuerySet[Partner]) -> None:
        partners = list(queryset)
        for partner in partners:
            partner_webhook_secret_rotate(partner=partner, actor=Actor.staff(request.user))
        self.message_user(
            request,
            ngettext(
                "A new signing secret was issued for %(count)d partner. The previous secret stays valid until it "
                "is cleared; give the partner the new one from its page.",
                "New signing secrets were issued for %(count)d partners. The previous secrets stay valid until "
                "they are cleared; give each partner the new one from its page.",
                len(partners),
            )
            % {"count": len(partners)},
            messages.SUCCESS,
        )


class SharingForm(forms.ModelForm):
    class Meta:
        model = Sharing
        fields = ("partner", "purpose", "data_categories", "is_active")

    def clean(self) -> dict[str, Any]:
        cleaned = super().clean() or {}
        purpose = cleaned.get("purpose")
        categories = cleaned.get("data_categories")
        if purpose is None or categories is None:
            return cleaned
        if purpose.current_version is None:
            raise forms.ValidationError(_("Publish a notice for this purpose before sharing data for it."))
        allowed = set(purpose.current_version.data_categories.values_list("pk", flat=True))
        missing = [c.name for c in categories if c.pk not in allowed]
        if missing:
            self.add_error(
                "data_categories",
                _(
                    "The current notice for this purpose does not mention: %(categories)s. "
                    "Consumers must be told before a partner receives it; publish a new notice first."
                )
                % {"categories": ", ".join(missing)},
            )
        return cleaned


@admin.register(Sharing)
class SharingAdmin(ReadOnlyHistoryAdmin):
    form = SharingForm
    list_display = ("partner", "partner_kind", "purpose", "categories", "is_active")
    list_filter = ("partner", "purpose", "partner__kind", "is_active")
    list_select_related = ("partner", "purpose")
    search_fields = ("partner__name", "purpose__name")
    filter_horizontal = ("data_categories",)

    def get_queryset(self, request: HttpRequest) -> QuerySet[Sharing]:
        return super().get_queryset(request).prefetch_related("data_categories")

    @admin.display(description=_("kind"), ordering="partner__kind")
    def partner_kind(self, obj: Sharing) -> str:
        return obj.partner.get_kind_display()

    @admin.display(description=_("data categories"))
    def categories(self, obj: Sharing) -> str:
        return ", ".join(c.name for c in obj.data_categories.all())
