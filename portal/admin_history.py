"""The base of every admin with django-simple-history: history can be read, never reverted.

simple-history's history form saves whatever is POSTed to it, checking only the view-or-change
permission, and ``SIMPLE_HISTORY_REVERT_DISABLED`` merely hides its button. Reverting a consent, a
purpose, a request or a partner that way would change the domain without its service: no audit
event, no receipt, no partner event. So the form refuses every POST, superusers' included, and
shows the past version with every field read-only.
"""

from typing import Any

from django.contrib.admin import helpers
from django.contrib.admin.utils import flatten_fieldsets
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, HttpResponse
from simple_history.admin import SimpleHistoryAdmin


class ReadOnlyHistoryAdmin(SimpleHistoryAdmin):
    def revert_disabled(self, request: HttpRequest, obj: Any = None) -> bool:
        return True

    def history_form_view(
        self, request: HttpRequest, object_id: str, version_id: str, extra_context: dict[str, Any] | None = None
    ) -> HttpResponse:
        if request.method not in ("GET", "HEAD"):
            raise PermissionDenied
        return super().history_form_view(request, object_id, version_id, extra_context)

    def render_history_view(
        self, request: HttpRequest, template: str, context: dict[str, Any], **kwargs: Any
    ) -> HttpResponse:
        adminform = context.get("adminform")
        if adminform is not None:
            # The history form builds an editable form; show every field as text instead.
            fieldsets = list(adminform.fieldsets)
            context["adminform"] = helpers.AdminForm(
                adminform.form, fieldsets, {}, flatten_fieldsets(fieldsets), model_admin=self
            )
        response: HttpResponse = super().render_history_view(request, template, context, **kwargs)
        return response
