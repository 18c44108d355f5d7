"""What the admin pages of a partner's OAuth clients share: partner API credentials and connected apps.

Both are created with their secret shown once, can have the secret rotated, and can be ended
(``end_action``: revoked or disabled) but never deleted; their pages use the templates in
``admin/consents/oauth_client/``, specialised per model.
"""

from typing import Any

from django.contrib import admin
from django.db.models import Model
from django.http import HttpRequest, HttpResponse
from django.template.response import TemplateResponse
from django.urls import URLPattern, path
from django.utils.cache import add_never_cache_headers


class OAuthClientAdmin(admin.ModelAdmin):
    """The rotate and end pages' URLs, the pages' context and the page that shows a new secret once.

    A subclass defines ``rotate_view`` and ``<end_action>_view``.
    """

    end_action: str

    def rotate_view(self, request: HttpRequest, object_id: int) -> HttpResponse:
        raise NotImplementedError

    def get_urls(self) -> list[URLPattern]:
        info = self.opts.app_label, self.opts.model_name
        return [
            path(
                "<int:object_id>/rotate/",
                self.admin_site.admin_view(self.rotate_view),
                name="{}_{}_rotate".format(*info),
            ),
            path(
                f"<int:object_id>/{self.end_action}/",
                self.admin_site.admin_view(getattr(self, f"{self.end_action}_view")),
                name=f"{info[0]}_{info[1]}_{self.end_action}",
            ),
            *super().get_urls(),
        ]

    def _context(self, request: HttpRequest, title: Any, **extra: Any) -> dict[str, Any]:
        return {**self.admin_site.each_context(request), "opts": self.opts, "title": title, **extra}

    def _secret_page(self, request: HttpRequest, client: Model, secret: str, title: Any) -> HttpResponse:
        """The new client secret, shown this once and never cached."""
        response = TemplateResponse(
            request,
            f"admin/consents/{self.opts.model_name}/secret.html",
            self._context(request, title, client=client, client_secret=secret),
        )
        add_never_cache_headers(response)
        return response
