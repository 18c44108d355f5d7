"""Staff register partners' connected apps: create (secret shown once), edit, rotate the secret, disable.

The app's django-oauth-toolkit client is created and kept in step by ``consents.services.apps``;
DOT's own admin pages are unregistered so that nobody edits OAuth clients, codes or tokens directly.
"""

from typing import Any, cast

from django import forms
from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import get_object_or_404
from django.template.response import TemplateResponse
from django.urls import reverse
from django.utils.translation import gettext_lazy as _
from oauth2_provider import models as dot_models

from audit.services import Actor
from consents.admin.clients import OAuthClientAdmin
from consents.errors import DomainError
from consents.models import ConnectedApp
from consents.services.apps import (
    connected_app_create,
    connected_app_disable,
    connected_app_rotate_secret,
    connected_app_update,
    redirect_uris_clean,
)
from portal.models import User

for _model in (
    dot_models.Application,
    dot_models.AccessToken,
    dot_models.RefreshToken,
    dot_models.Grant,
    dot_models.IDToken,
    getattr(dot_models, "DeviceGrant", None),
):
    if _model is not None and admin.site.is_registered(_model):
        admin.site.unregister(_model)


def _staff(request: HttpRequest) -> User:
    return cast(User, request.user)


class ConnectedAppForm(forms.ModelForm):
    class Meta:
        model = ConnectedApp
        fields = (
            "partner",
            "name",
            "redirect_uris",
            "purposes",
            "data_categories",
            "max_duration_days",
            "max_lookback_days",
        )
        widgets = {"purposes": forms.CheckboxSelectMultiple, "data_categories": forms.CheckboxSelectMultiple}

    def clean_redirect_uris(self) -> str:
        try:
            return "\n".join(redirect_uris_clean(self.cleaned_data["redirect_uris"].split()))
        except DomainError as error:
            raise forms.ValidationError(error.message) from error


@admin.register(ConnectedApp)
class ConnectedAppAdmin(OAuthClientAdmin):
    end_action = "disable"
    form = ConnectedAppForm
    list_display = ("name", "partner", "client_id", "created_at", "disabled_at")
    list_filter = ("partner",)
    search_fields = ("name", "partner__name", "application__client_id")
    list_select_related = ("partner", "application")
    readonly_fields = ("client_id", "created_at", "created_by", "disabled_at")
    change_form_template = "admin/consents/connectedapp/change_form.html"

    @admin.display(description=_("client ID"), ordering="application__client_id")
    def client_id(self, app: ConnectedApp) -> str:
        return app.application.client_id

    def has_delete_permission(self, request: HttpRequest, obj: ConnectedApp | None = None) -> bool:
        return False  # disable instead: grants refer to the app

    def get_readonly_fields(self, request: HttpRequest, obj: ConnectedApp | None = None) -> Any:
        return (*self.readonly_fields, "partner") if obj is not None else self.readonly_fields

    def save_model(self, request: HttpRequest, obj: ConnectedApp, form: Any, change: bool) -> None:
        # Only changes come here: adding goes through add_view and connected_app_create.
        connected_app_update(app=obj, actor=Actor.staff(_staff(request)))

    def add_view(self, request: HttpRequest, form_url: str = "", extra_context: dict | None = None) -> HttpResponse:
        if not self.has_add_permission(request):
            raise PermissionDenied
        form = ConnectedAppForm(request.POST or None)
        if request.method == "POST" and form.is_valid():
            data = form.cleaned_data
            app, secret = connected_app_create(
                partner=data["partner"],
                name=data["name"],
                redirect_uris=data["redirect_uris"].split(),
                purposes=data["purposes"],
                data_categories=data["data_categories"],
                max_duration_days=data["max_duration_days"],
                max_lookback_days=data["max_lookback_days"],
                actor=Actor.staff(_staff(request)),
                created_by=_staff(request),
            )
            return self._secret_page(request, app, secret, _("New connected app"))
        return TemplateResponse(
            request,
            "admin/consents/connectedapp/create.html",
            self._context(request, _("Add connected app"), form=form, **(extra_context or {})),
        )

    def rotate_view(self, request: HttpRequest, object_id: int) -> HttpResponse:
        app = get_object_or_404(ConnectedApp.objects.select_related("partner", "application"), pk=object_id)
        if not self.has_change_permission(request, app):
            raise PermissionDenied
        if request.method == "POST":
            try:
                secret = connected_app_rotate_secret(app=app, actor=Actor.staff(_staff(request)))
            except DomainError as error:
                messages.error(request, error.message)
                return HttpResponseRedirect(reverse("admin:consents_connectedapp_change", args=[app.pk]))
            return self._secret_page(request, app, secret, _("New client secret"))
        return TemplateResponse(
            request,
            "admin/consents/connectedapp/confirm.html",
            self._context(
                request, _("Give “%(app)s” a new client secret?") % {"app": app}, client=app, action="rotate"
            ),
        )

    def disable_view(self, request: HttpRequest, object_id: int) -> HttpResponse:
        app = get_object_or_404(ConnectedApp.objects.select_related("partner", "application"), pk=object_id)
        if not self.has_change_permission(request, app):
            raise PermissionDenied
        if request.method == "POST":
            connected_app_disable(app=app, actor=Actor.staff(_staff(request)))
            messages.success(request, _("The app is disabled; its tokens no longer work."))
            return HttpResponseRedirect(reverse("admin:consents_connectedapp_change", args=[app.pk]))
        return TemplateResponse(
            request,
            "admin/consents/connectedapp/confirm.html",
            self._context(request, _("Disable “%(app)s”?") % {"app": app}, client=app, action="disable"),
        )
