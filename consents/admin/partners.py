"""Partners (data recipients) and what each receives for which purpose."""

from datetime import UTC
from typing import Any

from django import forms
from django.conf import settings
from django.contrib import admin, messages
from django.db.models import QuerySet
from django.http import HttpRequest, HttpResponse
from django.template.response import TemplateResponse
from django.urls import reverse
from django.utils import timezone
from django.utils.cache import add_never_cache_headers
from django.utils.html import format_html, format_html_join
from django.utils.text import format_lazy
from django.utils.translation import gettext_lazy as _
from django.utils.translation import ngettext

from audit.services import Actor
from consents.admin.notices import language_name, other_languages
from consents.admin.outbox import partner_webhook_enable_action
from consents.models import Partner, Sharing
from consents.models.translations import Translations
from consents.selectors.self_service import partner_self_service_changes
from consents.services.partners import partner_webhook_secret_rotate, secret_fingerprint, webhook_url_validate
from portal.admin_history import ReadOnlyHistoryAdmin
from portal.http import AuthenticatedHttpRequest


class PartnerForm(forms.ModelForm):
    """The partner, with its retention rule in the default language (the column) and in every other one."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        stored = self.instance.translations or {}
        for code, suffix in other_languages():
            self.fields[f"retention_{suffix}"] = forms.CharField(
                label=format_lazy(_("Retention of shared data ({language})"), language=language_name(code)),
                required=False,
                widget=forms.Textarea(attrs={"rows": 3}),
                initial=(stored.get(code) or {}).get("retention", ""),
            )

    def clean(self) -> dict[str, Any]:
        cleaned = super().clean() or {}
        # Consumers read the rule in their own language: a rule in some languages only is refused.
        texts = {"retention": str(cleaned.get("retention") or "").strip()}
        texts |= {
            f"retention_{suffix}": str(cleaned.get(f"retention_{suffix}") or "").strip()
            for _c, suffix in other_languages()
        }
        if any(texts.values()):
            for name, text in texts.items():
                if not text and name in self.fields:
                    self.add_error(name, _("Give the retention rule in every language, or in none."))
        return cleaned

    def save(self, commit: bool = True) -> Partner:
        partner = super().save(commit=False)
        partner.retention = partner.retention.strip()
        translations: Translations = {settings.LANGUAGE_CODE: {"retention": partner.retention}}
        for code, suffix in other_languages():
            translations[code] = {"retention": self.cleaned_data[f"retention_{suffix}"].strip()}
        partner.translations = translations
        if commit:
            partner.save()
        return partner

    def clean_webhook_url(self) -> str:
        url = self.cleaned_data.get("webhook_url", "")
        # The check the partner API applies too, with the guard every delivery passes.
        webhook_url_validate(url)
        return url


@admin.register(Partner)
class PartnerAdmin(ReadOnlyHistoryAdmin):
    # Signing secrets never appear in lists or on the partner's page (only fingerprints), are never
    # edited by hand, and are shown once, to staff who may change partners: after the partner is
    # added and after the rotate action, on a page that is not cached.
    form = PartnerForm
    list_display = ("name", "kind", "country", "status", "webhook_url", "created_at")
    list_filter = ("kind", "status", "country")
    search_fields = ("name", "slug")
    prepopulated_fields = {"slug": ("name",)}
    fieldsets = (
        (None, {"fields": ("name", "slug", "kind", "country", "policy_url", "status", "scorecard")}),
        (
            _("Retention of shared data"),
            {"fields": ("retention", *(f"retention_{suffix}" for _code, suffix in other_languages()))},
        ),
        (
            _("Webhooks"),
            {
                "fields": (
                    "webhook_url",
                    "webhook_disabled_at",
                    "signing_secret_fingerprint",
                    "previous_secret_fingerprint",
                    "self_service_changes",
                )
            },
        ),
        (_("Record"), {"fields": ("created_at",)}),
    )
    # The status changes only through suspend / reinstate on the scorecard, which asks for a reason and audits it.
    readonly_fields = (
        "status",
        "scorecard",
        "webhook_disabled_at",
        "signing_secret_fingerprint",
        "previous_secret_fingerprint",
        "self_service_changes",
        "created_at",
    )
    actions = ("rotate_webhook_secret", partner_webhook_enable_action)

    def get_form(self, request: HttpRequest, obj: Partner | None = None, change: bool = False, **kwargs: Any) -> Any:
        # The per-language retention fields are added by the form itself, not taken from the model.
        kwargs["fields"] = ("name", "slug", "kind", "country", "policy_url", "status", "retention", "webhook_url")
        return super().get_form(request, obj, change, **kwargs)

    def has_delete_permission(self, request: HttpRequest, obj: Partner | None = None) -> bool:
        # Deleting would take the partner's delivery and acknowledgement records with it; suspend instead.
        return False

    @admin.display(description=_("scorecard"))
    def scorecard(self, obj: Partner) -> str:
        if not obj.pk:
            return ""
        return format_html(
            '<a href="{}">{}</a>',
            reverse("admin:operations_scorecard", args=[obj.pk]),
            _("Acknowledgements, flagged accesses, webhooks; suspend or reinstate"),
        )

    @admin.display(description=_("webhook signing secret"))
    def signing_secret_fingerprint(self, obj: Partner) -> str:
        if not obj.pk:
            return str(_("issued when the partner is saved, and shown once"))
        return str(_("fingerprint %(fingerprint)s")) % {"fingerprint": secret_fingerprint(obj.webhook_secret)}

    @admin.display(description=_("previous signing secret"))
    def previous_secret_fingerprint(self, obj: Partner) -> str:
        now = timezone.now()
        if len(obj.webhook_signing_secrets(at=now)) < 2:
            return str(_("none"))
        fingerprint = secret_fingerprint(obj.webhook_secret_previous)
        if obj.webhook_secret_previous_expires_at is None:
            return str(_("still accepted, fingerprint %(fingerprint)s")) % {"fingerprint": fingerprint}
        return str(_("still accepted until %(when)s, fingerprint %(fingerprint)s")) % {
            "when": f"{obj.webhook_secret_previous_expires_at.astimezone(UTC):%Y-%m-%d %H:%M} UTC",
            "fingerprint": fingerprint,
        }

    @admin.display(description=_("changes by the partner over the API"))
    def self_service_changes(self, obj: Partner) -> str:
        if not obj.pk:
            return "-"
        changes = partner_self_service_changes(partner=obj)
        if not changes:
            return str(_("none"))
        return format_html(
            "<ul>{}</ul>",
            format_html_join(
                "",
                "<li>{} UTC — {}: {}</li>",
                ((f"{c.at.astimezone(UTC):%Y-%m-%d %H:%M}", c.what, c.detail) for c in changes),
            ),
        )

    def _secrets_page(self, request: HttpRequest, partners: list[Partner], title: str) -> HttpResponse:
        """The one page that shows signing secrets: rendered directly, never stored, never cached."""
        response = TemplateResponse(
            request,
            "admin/consents/partner/webhook_secrets.html",
            {**self.admin_site.each_context(request), "opts": self.opts, "title": title, "partners": partners},
        )
        add_never_cache_headers(response)
        return response

    def response_add(self, request: HttpRequest, obj: Partner, post_url_continue: str | None = None) -> HttpResponse:
        response = super().response_add(request, obj, post_url_continue)
        if not self.has_change_permission(request, obj):
            return response
        return self._secrets_page(request, [obj], str(_("Webhook signing secret of the new partner")))

    @admin.action(description=_("Rotate webhook signing secret"), permissions=["change"])
    def rotate_webhook_secret(self, request: AuthenticatedHttpRequest, queryset: QuerySet[Partner]) -> HttpResponse:
        partners = [
            partner_webhook_secret_rotate(partner=partner, actor=Actor.staff(request.user)) for partner in queryset
        ]
        self.message_user(
            request,
            ngettext(
                "A new signing secret was issued for %(count)d partner. The previous secret stays valid for "
                "%(hours)d hours; copy the new one below, it is not shown again.",
                "New signing secrets were issued for %(count)d partners. The previous secrets stay valid for "
                "%(hours)d hours; copy the new ones below, they are not shown again.",
                len(partners),
            )
            % {"count": len(partners), "hours": settings.WEBHOOK_SECRET_OVERLAP_HOURS},
            messages.SUCCESS,
        )
        return self._secrets_page(request, partners, str(_("New webhook signing secrets")))


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
