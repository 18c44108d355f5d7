"""Staff manage partners' API credentials: create, rotate the secret, revoke.

A client secret is stored only as a hash, so the page that follows creating or rotating a
credential is the one time it is shown; it is rendered directly (never put in a message, a cookie
or the session) and marked not to be cached.
"""

from typing import Any, cast

from django import forms
from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.db.models import QuerySet
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import get_object_or_404
from django.template.response import TemplateResponse
from django.urls import reverse
from django.utils.translation import gettext_lazy as _
from oauth2_provider.settings import oauth2_settings

from audit.services import Actor
from consents.admin.clients import OAuthClientAdmin
from consents.errors import DomainError
from consents.models import PARTNER_DEFAULT_SCOPES, PARTNER_SCOPES, Partner, PartnerCredential, PartnerStatus
from consents.services.partners import partner_credential_create, partner_credential_revoke, partner_credential_rotate
from portal.models import User


def _staff(request: HttpRequest) -> User:
    # admin_view has already required an active staff member with MFA.
    return cast(User, request.user)


class CredentialCreateForm(forms.Form):
    partner = forms.ModelChoiceField(
        label=_("Partner"), queryset=Partner.objects.filter(status=PartnerStatus.ACTIVE).order_by("name")
    )
    label = forms.CharField(
        label=_("Label"), max_length=120, help_text=_("Tells this credential apart, e.g. production or staging.")
    )
    scopes = forms.MultipleChoiceField(
        label=_("Scopes"),
        choices=[(scope, f"{scope} — {oauth2_settings.SCOPES[scope]}") for scope in PARTNER_SCOPES],
        initial=list(PARTNER_DEFAULT_SCOPES),
        widget=forms.CheckboxSelectMultiple,
        help_text=_("Grant only what the partner needs."),
    )


class RevokedFilter(admin.SimpleListFilter):
    title = _("state")
    parameter_name = "state"

    def lookups(self, request: HttpRequest, model_admin: admin.ModelAdmin) -> list[tuple[str, Any]]:
        return [("active", _("Active")), ("revoked", _("Revoked"))]

    def queryset(self, request: HttpRequest, queryset: QuerySet) -> QuerySet:
        if self.value() == "active":
            return queryset.filter(revoked_at__isnull=True)
        if self.value() == "revoked":
            return queryset.filter(revoked_at__isnull=False)
        return queryset


@admin.register(PartnerCredential)
class PartnerCredentialAdmin(OAuthClientAdmin):
    end_action = "revoke"
    list_display = ("label", "partner", "client_id", "scopes", "created_at", "rotated_at", "revoked_at")
    list_filter = (RevokedFilter, "partner")
    search_fields = ("label", "partner__name", "application__client_id")
    list_select_related = ("partner", "application")
    fields = (
        "partner",
        "label",
        "client_id",
        "scopes",
        "created_at",
        "created_by",
        "rotated_at",
        "revoked_at",
    )
    readonly_fields = fields
    actions = ["revoke_selected"]
    change_form_template = "admin/consents/partnercredential/change_form.html"

    @admin.display(description=_("client ID"), ordering="application__client_id")
    def client_id(self, credential: PartnerCredential) -> str:
        return credential.application.client_id

    def has_delete_permission(self, request: HttpRequest, obj: PartnerCredential | None = None) -> bool:
        return False  # revoke instead: the record stays for the audit trail

    def add_view(self, request: HttpRequest, form_url: str = "", extra_context: dict | None = None) -> HttpResponse:
        if not self.has_add_permission(request):
            raise PermissionDenied
        form = CredentialCreateForm(request.POST or None)
        if request.method == "POST" and form.is_valid():
            credential, secret = partner_credential_create(
                partner=form.cleaned_data["partner"],
                label=form.cleaned_data["label"],
                scopes=form.cleaned_data["scopes"],
                actor=Actor.staff(_staff(request)),
                created_by=_staff(request),
            )
            return self._secret_page(request, credential, secret, _("New API credential"))
        return TemplateResponse(
            request,
            "admin/consents/partnercredential/create.html",
            self._context(request, _("Add partner API credential"), form=form, **(extra_context or {})),
        )

    def rotate_view(self, request: HttpRequest, object_id: int) -> HttpResponse:
        credential = get_object_or_404(PartnerCredential.objects.select_related("partner", "application"), pk=object_id)
        if not self.has_change_permission(request, credential):
            raise PermissionDenied
        if request.method == "POST":
            try:
                secret = partner_credential_rotate(credential=credential, actor=Actor.staff(_staff(request)))
            except DomainError as error:
                messages.error(request, error.message)
                return HttpResponseRedirect(reverse("admin:consents_partnercredential_change", args=[credential.pk]))
            return self._secret_page(request, credential, secret, _("Rotated API credential"))
        return TemplateResponse(
            request,
            "admin/consents/partnercredential/confirm.html",
            self._context(
                request,
                _("Rotate the secret of “%(credential)s”?") % {"credential": credential},
                client=credential,
                action="rotate",
            ),
        )

    def revoke_view(self, request: HttpRequest, object_id: int) -> HttpResponse:
        credential = get_object_or_404(PartnerCredential.objects.select_related("partner", "application"), pk=object_id)
        if not self.has_change_permission(request, credential):
            raise PermissionDenied
        if request.method == "POST":
            partner_credential_revoke(credential=credential, actor=Actor.staff(_staff(request)))
            messages.success(request, _("The credential is revoked; its tokens no longer work."))
            return HttpResponseRedirect(reverse("admin:consents_partnercredential_change", args=[credential.pk]))
        return TemplateResponse(
            request,
            "admin/consents/partnercredential/confirm.html",
            self._context(
                request,
                _("Revoke “%(credential)s”?") % {"credential": credential},
                client=credential,
                action="revoke",
            ),
        )

    @admin.action(description=_("Revoke selected credentials"), permissions=["change"])
    def revoke_selected(self, request: HttpRequest, queryset: QuerySet[PartnerCredential]) -> None:
        count = 0
        for credential in queryset.filter(revoked_at__isnull=True):
            partner_credential_revoke(credential=credential, actor=Actor.staff(_staff(request)))
            count += 1
        messages.success(request, _("Credentials revoked: %(count)d.") % {"count": count})
