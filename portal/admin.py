from typing import Any, cast

from allauth.account.admin import EmailAddressAdmin as AllauthEmailAddressAdmin
from allauth.account.models import EmailAddress
from django.contrib import admin, messages
from django.contrib.auth.admin import GroupAdmin as DjangoGroupAdmin
from django.contrib.auth.admin import UserAdmin as DjangoUserAdmin
from django.contrib.auth.models import Group
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

    # Who is staff and what they may do is for superusers alone: anyone else with the change
    # permission could otherwise make themselves a superuser. ModelForm drops read-only fields, so
    # a crafted POST setting them changes nothing.
    privilege_fields = ("is_staff", "is_superuser", "groups", "user_permissions")

    # The people list is the directory staff find someone in before stating why they open their records.
    gate_lists = False

    def consumer_of(self, obj: User) -> User:
        return obj

    def get_readonly_fields(self, request: HttpRequest, obj: Any = None) -> tuple[str, ...]:
        fields = tuple(super().get_readonly_fields(request, obj))
        if request.user.is_superuser:
            return fields
        return fields + self.privilege_fields

    def has_change_permission(self, request: HttpRequest, obj: User | None = None) -> bool:
        # Changing a staff member's email or password is taking over their account.
        if obj is not None and (obj.is_staff or obj.is_superuser) and not request.user.is_superuser:
            return False
        return super().has_change_permission(request, obj)

    def has_delete_permission(self, request: HttpRequest, obj: User | None = None) -> bool:
        if obj is not None and (obj.is_staff or obj.is_superuser) and not request.user.is_superuser:
            return False
        return super().has_delete_permission(request, obj)

    def has_export_trail_permission(self, request: HttpRequest) -> bool:
        return request.user.has_perm("audit.export_trail")

    @admin.action(description=_("Export the audit trail (signed JSON)"), permissions=["export_trail"])
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


admin.site.unregister(Group)


@admin.register(Group)
class GroupAdmin(DjangoGroupAdmin):
    """Roles are read by those allowed to; only superusers change what a role may do."""

    def has_add_permission(self, request: HttpRequest) -> bool:
        return request.user.is_superuser

    def has_change_permission(self, request: HttpRequest, obj: Group | None = None) -> bool:
        return request.user.is_superuser

    def has_delete_permission(self, request: HttpRequest, obj: Group | None = None) -> bool:
        return request.user.is_superuser


admin.site.unregister(EmailAddress)


@admin.register(EmailAddress)
class EmailAddressAdmin(RecordsStaffAccess, AllauthEmailAddressAdmin):
    """allauth's admin, with its "mark verified" action needing the change permission, not just view."""

    def consumer_of(self, obj: EmailAddress) -> User:
        return cast(User, obj.user)

    @admin.action(description=_("Mark selected email addresses as verified"), permissions=["change"])
    def make_verified(self, request: HttpRequest, queryset: QuerySet[EmailAddress]) -> None:
        super().make_verified(request, queryset)
