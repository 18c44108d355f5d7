from typing import cast

from django.contrib import admin, messages
from django.contrib.auth.admin import UserAdmin as DjangoUserAdmin
from django.db.models import QuerySet
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.utils.translation import gettext_lazy as _

from audit.admin_access import RecordsStaffAccess
from audit.trail import audit_trail_document
from portal.models import User


@admin.register(User)
class UserAdmin(RecordsStaffAccess, DjangoUserAdmin):
    ordering = ("email",)
    list_display = ("email", "is_staff", "is_active", "jurisdiction", "date_joined", "last_login")
    list_filter = ("is_staff", "is_active", "jurisdiction")
    search_fields = ("email", "first_name", "last_name")
    readonly_fields = ("date_joined", "last_login")
    fieldsets = (
        (None, {"fields": ("email", "password")}),
        (_("Personal info"), {"fields": ("first_name", "last_name", "jurisdiction")}),
        (_("Permissions"), {"fields": ("is_active", "is_staff", "is_superuser", "groups", "user_permissions")}),
        (_("Important dates"), {"fields": ("last_login", "date_joined")}),
    )
    add_fieldsets = ((None, {"classes": ("wide",), "fields": ("email", "password1", "password2")}),)
    actions = ["export_audit_trail"]

    def consumer_of(self, obj: User) -> User:
        return obj

    @admin.action(description=_("Export the audit trail (signed JSON)"))
    def export_audit_trail(self, request: HttpRequest, queryset: QuerySet[User]) -> HttpResponse:
        """One subject's full audit trail for a regulator or a complaint, signed with the receipt key."""
        if queryset.count() != 1:
            self.message_user(request, _("Choose exactly one person to export."), level=messages.ERROR)
            return HttpResponseRedirect(request.get_full_path())
        subject = queryset.get()
        document = audit_trail_document(subject=subject, requested_by=cast(User, request.user))
        return HttpResponse(
            document,
            content_type="application/jose",
            headers={"Content-Disposition": f'attachment; filename="audit-trail-{subject.pk}.jws"'},
        )


# The privacy-request queue registers its own admin classes.
from portal import admin_requests  # noqa: E402, F401
