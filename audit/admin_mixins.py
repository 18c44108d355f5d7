"""Admin building blocks every app may use (audit is the lowest app, so anyone may import from here)."""

from typing import Any

from django.http import HttpRequest


class ReadOnlyAdminMixin:
    """Records that change only through their services (or never): staff may read them, not edit them.

    Fits model admins and inlines alike (an inline's permission checks are also given ``obj``).
    """

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False
