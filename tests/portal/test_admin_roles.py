"""Every admin page and action, for each staff role: what it may open, and that a refusal changes nothing.

The expectation comes from ``portal.roles.ROLE_PERMISSIONS`` (what each role is given) and from what
each admin allows anyone at all (asked of a superuser), so a new admin, action or permission is
checked without listing every cell by hand.
"""

from datetime import timedelta
from typing import Any

import pytest
import time_machine
from allauth.mfa.totp.internal.auth import TOTP, generate_totp_secret
from django.apps import apps
from django.contrib import admin
from django.contrib.admin.helpers import ACTION_CHECKBOX_NAME
from django.contrib.auth.models import Group
from django.test import Client, RequestFactory
from django.urls import NoReverseMatch, reverse

from audit.access import access_event_record_staff
from audit.models import AccessEvent, AuditEvent
from audit.services import Actor
from consents.models import PARTNER_SCOPES, Consent, ConsentStatus, Purpose
from consents.services.consents import consent_grant, consent_revoke
from consents.services.partners import partner_credential_create
from portal.models import User
from portal.roles import (
    AUDITOR,
    PARTNER_MANAGER,
    PRIVACY_OFFICER,
    ROLE_PERMISSIONS,
    SUPPORT_AGENT,
    staff_roles_ensure,
)
from privacy_requests.services.deletion import privacy_request_deletion_execute
from privacy_requests.services.requests import (
    privacy_request_deletion_create,
    privacy_request_export_create,
    privacy_request_extend,
)
from tests.factories import (
    PartnerFactory,
    PurposeFactory,
    SharingFactory,
    StaffFactory,
    UserFactory,
    connected_app_create_for_tests,
    publish_form_texts,
    staff_reason_state,
)
from tests.privacy_requests.helpers import consumer_data_seed

GROUPS = {
    "privacy officer": PRIVACY_OFFICER,
    "support agent": SUPPORT_AGENT,
    "partner manager": PARTNER_MANAGER,
    "auditor": AUDITOR,
}
# Let in, but with every permission (the admin's own limits still apply) or with none.
SUPERUSER, NO_PERMISSIONS = "superuser", "staff without permissions"
# Sent to the login page before any permission is looked at.
NOT_LET_IN = ("superuser without MFA", "anonymous")
ROLES = [*GROUPS, SUPERUSER, NO_PERMISSIONS, *NOT_LET_IN]

# The permission each admin action needs ("delete_selected" needs the model's delete permission).
ACTION_PERMISSIONS: dict[str, dict[str, str]] = {
    "portal.user": {"export_audit_trail": "audit.export_trail"},
    "privacy_requests.privacyrequest": {
        "extend": "privacy_requests.decide_privacyrequest",
        "reject": "privacy_requests.decide_privacyrequest",
    },
    "privacy_requests.agentrequest": {
        "verify": "privacy_requests.verify_agentrequest",
        "reject": "privacy_requests.verify_agentrequest",
    },
    "privacy_requests.privacyrequestpartnertask": {
        "record_acknowledgement": "privacy_requests.record_privacyrequestpartnertask"
    },
    "consents.purpose": {"publish_new_version": "consents.change_purpose"},
    "consents.partner": {
        "rotate_webhook_secret": "consents.change_partner",
        "partner_webhook_enable_action": "consents.change_partner",
    },
    "consents.partnercredential": {"revoke_selected": "consents.change_partnercredential"},
    "consents.outboxevent": {
        "redrive": "consents.change_outboxevent",
        "webhook_enable": "consents.change_outboxevent",
    },
    "audit.auditevent": {"verify_chains": "audit.verify_chain"},
    "account.emailaddress": {"make_verified": "account.change_emailaddress"},
}
# What a refused action would need to run if it were allowed: the intermediate forms' answers.
ACTION_INPUT = {"apply": "1", "reason": "Refused by the matrix test", "note": "By letter", "months": "1", "days": "0"}


@pytest.fixture
def world(db, django_capture_on_commit_callbacks) -> dict[str, Any]:
    """One object of every kind the admin shows, with history, belonging to a consumer."""
    consumer = UserFactory(email="consumer@example.com")
    with django_capture_on_commit_callbacks(execute=False):
        data = consumer_data_seed(consumer)
        export = privacy_request_export_create(user=consumer, language="en")
        privacy_request_extend(request=export, months=1, days=0, reason="Large archive", staff=StaffFactory())
        leaving = UserFactory(email="leaving@example.com")
        consumer_data_seed(leaving)
        deletion = privacy_request_deletion_create(user=leaving, language="en")
        with time_machine.travel(deletion.grace_ends_at + timedelta(minutes=1)):
            privacy_request_deletion_execute(request_id=deletion.pk)
        partner_credential_create(
            partner=data.partners[0], label="production", scopes=PARTNER_SCOPES, actor=Actor.system("tests")
        )
        access_event_record_staff(staff=StaffFactory(), consumer=consumer, what="Phone call")
        connected_app_create_for_tests(partner=data.partners[0], purpose=data.purposes[0])
    return {"consumer": consumer, "purpose": data.purposes[0]}


def _member(role: str) -> User | None:
    if role == "anonymous":
        return None
    user = UserFactory(email=f"{role.replace(' ', '-')}@staff.example.com", is_staff=True)
    if role in (SUPERUSER, "superuser without MFA"):
        user.is_superuser = True
        user.save(update_fields=["is_superuser"])
    if role in GROUPS:
        # Created by the migration; put back if a transactional test flushed the database meanwhile.
        if not Group.objects.filter(name=GROUPS[role]).exists():
            staff_roles_ensure()
        user.groups.add(Group.objects.get(name=GROUPS[role]))
    if role != "superuser without MFA":
        TOTP.activate(user, generate_totp_secret())
    return user


def _can(role: str, permission: str) -> bool:
    if role == SUPERUSER:
        return True
    return permission in ROLE_PERMISSIONS.get(GROUPS.get(role, ""), ())


def _snapshot() -> dict[str, list[str]]:
    """Every row of every table but the sessions (a request may touch its own session)."""
    return {
        model._meta.label: sorted(repr(row) for row in model._default_manager.values_list())
        for model in apps.get_models()
        if model._meta.label != "sessions.Session" and model._meta.managed
    }


def _sample(model: Any, world: dict[str, Any]) -> Any:
    if model is User:
        return world["consumer"]
    return model._default_manager.order_by("pk").first()


class Matrix:
    def __init__(self, role: str, client: Client) -> None:
        self.role = role
        self.client = client
        self.wrong: list[str] = []

    def expect(self, method: str, url: str, allowed: bool, data: dict[str, Any] | None = None) -> None:
        """GET: 200 when allowed, else 403. POST refused: 403 and nothing changed."""
        if method == "GET":
            response = self.client.get(url)
            wanted = 302 if self.role in NOT_LET_IN else (200 if allowed else 403)
            if response.status_code != wanted:
                self.wrong.append(f"GET {url}: {response.status_code}, expected {wanted}")
            return
        assert not allowed, "the matrix only sends POSTs that must be refused"
        before = _snapshot()
        response = self.client.post(url, data or {})
        wanted = 302 if self.role in NOT_LET_IN else 403
        if response.status_code != wanted:
            self.wrong.append(f"POST {url}: {response.status_code}, expected {wanted}")
        if _snapshot() != before:
            self.wrong.append(f"POST {url} changed the database")

    def refused_action(self, url: str, action: str, pk: Any, viewer: bool) -> None:
        before = _snapshot()
        response = self.client.post(url, {"action": action, ACTION_CHECKBOX_NAME: [pk], **ACTION_INPUT})
        # Let in without the permission: the action is not offered ("No action selected").
        wanted = (302,) if self.role in NOT_LET_IN else ((200, 302) if viewer else (403,))
        if response.status_code not in wanted:
            self.wrong.append(f"action {action} on {url}: {response.status_code}, expected {wanted}")
        if _snapshot() != before:
            self.wrong.append(f"action {action} on {url} changed the database")


def _superuser_request() -> Any:
    request = RequestFactory().get("/admin/")
    request.user = User(is_staff=True, is_superuser=True, is_active=True)
    return request


def _model_cells(matrix: Matrix, model: Any, model_admin: admin.ModelAdmin, world: dict[str, Any]) -> None:
    role, opts = matrix.role, model._meta
    info = f"{opts.app_label}_{opts.model_name}"
    perm = f"{opts.app_label}.%s_{opts.model_name}"
    su = _superuser_request()
    obj = _sample(model, world)
    may_view = model_admin.has_view_or_change_permission(su, obj) and (
        _can(role, perm % "view") or _can(role, perm % "change")
    )
    may_change = model_admin.has_change_permission(su, obj) and _can(role, perm % "change")
    may_add = model_admin.has_add_permission(su) and _can(role, perm % "add")
    may_delete = model_admin.has_delete_permission(su, obj) and _can(role, perm % "delete")

    changelist = reverse(f"admin:{info}_changelist")
    matrix.expect("GET", changelist, may_view)
    add = reverse(f"admin:{info}_add")
    matrix.expect("GET", add, may_add)
    if not may_add:
        matrix.expect("POST", add, False, {"name": "Forged", "email": "forged@example.com", "label": "forged"})
    if may_view and role not in NOT_LET_IN:
        action_form = matrix.client.get(changelist).context["action_form"]
        offered = action_form.fields["action"].choices if action_form is not None else []
        offered_names = {name for name, _label in offered if name}
        needs = {**ACTION_PERMISSIONS.get(opts.label_lower, {}), "delete_selected": perm % "delete"}
        every = set(model_admin.get_actions(su))
        assert every <= needs.keys(), f"{opts.label_lower}: say which permission {every - needs.keys()} needs"
        expected = {name for name in every if _can(role, needs[name])}
        if offered_names != expected:
            matrix.wrong.append(f"{changelist} offers {sorted(offered_names)}, expected {sorted(expected)}")
    if obj is None:
        return
    for action, needed in {**ACTION_PERMISSIONS.get(opts.label_lower, {}), "delete_selected": perm % "delete"}.items():
        if action in model_admin.get_actions(su) and not _can(role, needed):
            matrix.refused_action(changelist, action, obj.pk, may_view)

    change = reverse(f"admin:{info}_change", args=[obj.pk])
    matrix.expect("GET", change, may_view)
    if not may_change:
        matrix.expect("POST", change, False, {"name": "Forged", "email": "forged@example.com", "status": "granted"})
    delete = reverse(f"admin:{info}_delete", args=[obj.pk])
    matrix.expect("GET", delete, may_delete)
    if not may_delete:
        matrix.expect("POST", delete, False, {"post": "yes"})
    matrix.expect("GET", reverse(f"admin:{info}_history", args=[obj.pk]), may_view)
    history = getattr(model, "history", None)
    if history is not None and hasattr(model_admin, "history_form_view"):
        version = history.filter(**{opts.pk.attname: obj.pk}).order_by("history_id").first()
        url = reverse(f"admin:{info}_simple_history", args=[obj.pk, version.history_id])
        matrix.expect("GET", url, may_view)
        # Reverting is refused to everyone, superusers included.
        matrix.expect("POST", url, False, {"name": "Forged", "status": "granted", "legal_basis": "contract"})


def _custom_view_cells(matrix: Matrix, world: dict[str, Any]) -> None:
    role = matrix.role
    purpose = world["purpose"]
    publish = reverse("admin:consents_purpose_publish", args=[purpose.pk])
    may_publish = _can(role, "consents.change_purpose")
    matrix.expect("GET", publish, may_publish)
    if not may_publish:
        matrix.expect("POST", publish, False, {"description": "Forged", "retention": "Forever", "change_summary": "x"})
    credential = apps.get_model("consents", "PartnerCredential").objects.get()
    may_manage = _can(role, "consents.change_partnercredential")
    for name in ("rotate", "revoke"):
        url = reverse(f"admin:consents_partnercredential_{name}", args=[credential.pk])
        matrix.expect("GET", url, may_manage)
        if not may_manage:
            matrix.expect("POST", url, False)
    app = apps.get_model("consents", "ConnectedApp").objects.get()
    may_manage_apps = _can(role, "consents.change_connectedapp")
    for name in ("rotate", "disable"):
        url = reverse(f"admin:consents_connectedapp_{name}", args=[app.pk])
        matrix.expect("GET", url, may_manage_apps)
        if not may_manage_apps:
            matrix.expect("POST", url, False)
    for name in ("privacy_requests_report_ccpa", "privacy_requests_report_processing"):
        matrix.expect("GET", reverse(f"admin:{name}"), _can(role, "privacy_requests.view_regulator_reports"))
    verify = reverse("admin:audit_auditevent_verify")
    response = matrix.client.post(verify)
    wanted = 302 if role in NOT_LET_IN or _can(role, "audit.verify_chain") else 403
    if response.status_code != wanted:
        matrix.wrong.append(f"POST {verify}: {response.status_code}, expected {wanted}")


@pytest.mark.parametrize("role", ROLES)
def test_every_admin_page_and_action_answers_each_role_as_its_permissions_say(role, world, client):
    user = _member(role)
    if user is not None:
        client.force_login(user)
        # Permissions are what this matrix checks; the reason the admin asks first is tests/audit's.
        staff_reason_state(user, *User.objects.filter(is_staff=False))
    matrix = Matrix(role, client)
    index = client.get(reverse("admin:index"))
    assert index.status_code == (302 if role in NOT_LET_IN else 200)

    for model, model_admin in admin.site._registry.items():
        try:
            _model_cells(matrix, model, model_admin, world)
        except NoReverseMatch as error:  # pragma: no cover - a failure message, not a branch
            matrix.wrong.append(f"{model._meta.label}: {error}")
    _custom_view_cells(matrix, world)

    assert matrix.wrong == []


RELATED = "content_type"


def _migration_roles() -> dict[str, tuple[str, ...]]:
    """The frozen mapping of the latest portal migration that creates the role groups.

    Permissions of models that later moved to the privacy_requests app are named as they are now:
    the move (portal 0005) relabels their content types and keeps the groups' permission rows.
    """
    import pkgutil
    from importlib import import_module

    import portal.migrations

    names = sorted(module.name for module in pkgutil.iter_modules(portal.migrations.__path__))
    frozen = [getattr(import_module(f"portal.migrations.{name}"), "ROLES", None) for name in names]
    moved = import_module("portal.migrations.0005_privacy_requests_move").MOVED_MODELS

    def now_named(label: str) -> str:
        app_label, codename = label.split(".")
        if app_label == "portal" and codename.split("_", 1)[1] in moved:
            return f"privacy_requests.{codename}"
        return label

    latest = [roles for roles in frozen if roles is not None][-1]
    roles = {name: tuple(now_named(label) for label in labels) for name, labels in latest.items()}
    # Later migrations of other apps give the groups their new permissions (``ROLES_GRANTED``).
    import audit.migrations
    import consents.migrations
    import privacy_requests.migrations

    for package in (privacy_requests.migrations, consents.migrations, audit.migrations):
        for module in sorted(m.name for m in pkgutil.iter_modules(package.__path__)):
            granted = getattr(import_module(f"{package.__name__}.{module}"), "ROLES_GRANTED", {})
            for name, labels in granted.items():
                roles[name] = (*roles[name], *labels)
    return roles


def test_the_migrations_roles_are_the_roles_in_code():
    # A change to portal/roles.py needs a migration that brings existing databases along.
    assert {name: set(perms) for name, perms in _migration_roles().items()} == {
        name: set(perms) for name, perms in ROLE_PERMISSIONS.items()
    }


def test_role_groups_in_the_database_match_portal_roles(db):
    # Transactional tests flush the test database, the migration's groups with it.
    if not Group.objects.filter(name__in=ROLE_PERMISSIONS).exists():
        staff_roles_ensure()
    live = {
        group.name: {
            f"{p.content_type.app_label}.{p.codename}" for p in group.permissions.select_related("content_type")
        }
        for group in Group.objects.filter(name__in=ROLE_PERMISSIONS)
    }
    assert live == {name: set(permissions) for name, permissions in ROLE_PERMISSIONS.items()}


def test_no_role_may_change_privileges_or_see_secrets_tables():
    granted = {permission for permissions in ROLE_PERMISSIONS.values() for permission in permissions}
    forbidden_prefixes = ("auth.add_", "auth.change_", "auth.delete_", "mfa.", "oauth2_provider.")
    assert not [p for p in granted if p.startswith(forbidden_prefixes)]
    assert not [p for p in granted if p.endswith(("_user", "_group")) and not p.split(".")[1].startswith("view_")]


# Regression tests for the holes this closes ---------------------------------------------------


@pytest.fixture
def granted(db):
    consumer = UserFactory(email="consumer@example.com")
    purpose = PurposeFactory(slug="offers", name="Personalised offers")
    SharingFactory(partner=PartnerFactory(slug="adco"), purpose=purpose)
    consent = consent_grant(user=consumer, purpose=purpose, actor=Actor.consumer(consumer))
    return consent


def _role_client(client: Client, role: str) -> Client:
    """A member of the role, logged in, with a reason stated for every consumer (the gate is tested in
    tests/audit/test_staff_access.py)."""
    user = _member(role)
    assert user is not None
    client.force_login(user)
    staff_reason_state(user, *User.objects.filter(is_staff=False))
    return client


@pytest.mark.parametrize("role", ["support agent", "auditor", SUPERUSER])
def test_history_form_post_cannot_forge_a_consent(client, granted, role):
    from consents.models import ConsentReceipt, OutboxEvent

    consent_revoke(user=granted.user, purpose=granted.purpose, actor=Actor.consumer(granted.user))
    revoked = Consent.objects.get(pk=granted.pk)
    first = Consent.history.filter(id=granted.pk).order_by("history_id").first()
    counts = (ConsentReceipt.objects.count(), OutboxEvent.objects.count(), AuditEvent.objects.count())
    url = reverse("admin:consents_consent_simple_history", args=[granted.pk, first.history_id])
    data = {"user": granted.user_id, "purpose": granted.purpose_id, "version": granted.version_id, "status": "granted"}

    response = _role_client(client, role).post(url, data)

    assert response.status_code == 403
    assert Consent.objects.get(pk=granted.pk).status == revoked.status == ConsentStatus.REVOKED
    assert (ConsentReceipt.objects.count(), OutboxEvent.objects.count(), AuditEvent.objects.count()) == counts


def test_history_form_still_shows_a_past_version_read_only(client, granted):
    first = Consent.history.filter(id=granted.pk).order_by("history_id").first()
    url = reverse("admin:consents_consent_simple_history", args=[granted.pk, first.history_id])

    response = _role_client(client, "support agent").get(url)

    content = response.content.decode()
    assert response.status_code == 200
    assert 'name="status"' not in content
    assert 'name="_save"' not in content


@pytest.mark.parametrize(
    ("kind", "url_name"),
    [("list", "admin:consents_consent_history"), ("version", "admin:consents_consent_simple_history")],
)
def test_opening_a_consumers_history_is_logged_as_a_staff_access(client, granted, kind, url_name):
    first = Consent.history.filter(id=granted.pk).order_by("history_id").first()
    args = [granted.pk] if kind == "list" else [granted.pk, first.history_id]

    response = _role_client(client, "support agent").get(reverse(url_name, args=args))

    assert response.status_code == 200
    access = AccessEvent.objects.get(user=granted.user, staff_user__email="support-agent@staff.example.com")
    assert access.detail.startswith(
        "Opened its history in the admin" if kind == "list" else "Opened a past version in the admin"
    )
    assert AuditEvent.objects.filter(action="access.staff_viewed", subject=granted.user).count() == 1


def test_opening_a_users_history_is_logged_as_a_staff_access(client, granted):
    response = _role_client(client, "auditor").get(reverse("admin:portal_user_history", args=[granted.user.pk]))

    assert response.status_code == 200
    assert AccessEvent.objects.filter(user=granted.user, detail__startswith="Opened its history").count() == 1


@pytest.mark.parametrize(
    ("role", "changelist", "action", "target"),
    [
        ("support agent", "admin:privacy_requests_privacyrequest_changelist", "reject", "request"),
        ("support agent", "admin:privacy_requests_privacyrequest_changelist", "extend", "request"),
        ("auditor", "admin:privacy_requests_privacyrequest_changelist", "reject", "request"),
        (
            "support agent",
            "admin:privacy_requests_privacyrequestpartnertask_changelist",
            "record_acknowledgement",
            "task",
        ),
        ("support agent", "admin:portal_user_changelist", "export_audit_trail", "user"),
    ],
)
def test_queue_and_export_actions_need_their_permission(client, world, role, changelist, action, target):
    from privacy_requests.models import PrivacyRequest, PrivacyRequestPartnerTask

    objects = {
        "request": PrivacyRequest.objects.filter(user=world["consumer"]).first(),
        "task": PrivacyRequestPartnerTask.objects.first(),
        "user": world["consumer"],
    }
    staff_client = _role_client(client, role)
    before = _snapshot()

    response = staff_client.post(
        reverse(changelist), {"action": action, ACTION_CHECKBOX_NAME: [objects[target].pk], **ACTION_INPUT}
    )

    # Not offered: the list shows again (or says "No action selected" when it has other actions).
    assert response.status_code in (200, 302)
    assert response.get("content-disposition") is None
    assert _snapshot() == before


def test_purpose_legal_basis_cannot_be_edited_on_the_row(client, granted):
    purpose = granted.purpose
    user = _member("privacy officer")
    client.force_login(user)
    data = {
        "name": "Personalised offers",
        "slug": purpose.slug,
        "category": "",
        "legal_basis": "legitimate_interest",
        "gpc_covered": "on",
        "default_duration_type": "one_time",
        "position": 0,
        "is_active": "on",
        "versions-TOTAL_FORMS": 0,
        "versions-INITIAL_FORMS": 0,
    }

    response = client.post(reverse("admin:consents_purpose_change", args=[purpose.pk]), data)

    assert response.status_code == 302
    purpose.refresh_from_db()
    assert (purpose.legal_basis, purpose.gpc_covered, purpose.default_duration_type) == (
        "consent",
        False,
        "persistent",
    )


def test_new_legal_basis_is_published_with_a_notice_and_asks_consumers_again(client, granted):
    purpose = granted.purpose
    client.force_login(_member("privacy officer"))
    current = purpose.current_version
    data = {
        "description": current.description,
        "retention": current.retention,
        "data_categories": list(current.data_categories.values_list("pk", flat=True)),
        "legal_basis": "legitimate_interest",
        "default_duration_type": "persistent",
        "change_summary": "We now rely on our legitimate interest.",
        **publish_form_texts(current),
    }
    url = reverse("admin:consents_purpose_publish", args=[purpose.pk])

    unticked = client.post(url, data)
    assert unticked.status_code == 200
    assert "tick Material change" in unticked.content.decode()
    assert purpose.versions.count() == 1

    response = client.post(url, {**data, "material": "on"})

    assert response.status_code == 302
    purpose.refresh_from_db()
    assert purpose.legal_basis == "legitimate_interest"
    assert purpose.current_version.number == 2
    event = AuditEvent.objects.get(action="purpose.version_published", data__version=2)
    assert event.data["terms"] == {"legal_basis": ["consent", "legitimate_interest"]}
    granted.refresh_from_db()
    assert granted.status == ConsentStatus.RECONSENT_REQUIRED
    assert granted.receipts.filter(event="reconsent_required").exists()


def test_only_superusers_change_who_is_staff_and_what_they_may_do(client, granted):
    from django.contrib.auth.models import Permission

    support = _member(NO_PERMISSIONS)
    assert support is not None
    support.user_permissions.add(Permission.objects.get(codename="change_user"))
    support.user_permissions.add(Permission.objects.get(codename="view_user"))
    client.force_login(support)
    staff_reason_state(support, granted.user)
    staff_roles_ensure()
    auditors = Group.objects.get(name=AUDITOR)
    consumer = granted.user
    data = {
        "email": consumer.email,
        "first_name": "Renamed",
        "last_name": "",
        "jurisdiction": consumer.jurisdiction,
        "is_active": "on",
        "is_staff": "on",
        "is_superuser": "on",
        "groups": [auditors.pk],
        "user_permissions": [Permission.objects.get(codename="delete_user").pk],
    }

    response = client.post(reverse("admin:portal_user_change", args=[consumer.pk]), data)
    own = client.post(reverse("admin:portal_user_change", args=[support.pk]), {**data, "email": support.email})

    assert response.status_code == 302
    consumer.refresh_from_db()
    assert consumer.first_name == "Renamed"
    assert (consumer.is_staff, consumer.is_superuser) == (False, False)
    assert not consumer.groups.exists()
    assert not consumer.user_permissions.exists()
    # Staff accounts (their own included) are superusers' to change: no password reset, no escalation.
    assert own.status_code == 403
    support.refresh_from_db()
    assert not support.is_superuser
    password = client.get(reverse("admin:auth_user_password_change", args=[support.pk]))
    assert password.status_code in (403, 404)


def test_only_superusers_change_what_a_role_may_do(client, db):
    from django.contrib.auth.models import Permission

    member = _member(NO_PERMISSIONS)
    assert member is not None
    member.user_permissions.add(*Permission.objects.filter(codename__in=["view_group", "change_group", "add_group"]))
    client.force_login(member)
    staff_roles_ensure()
    auditors = Group.objects.get(name=AUDITOR)
    before = _snapshot()

    change = client.post(
        reverse("admin:auth_group_change", args=[auditors.pk]),
        {"name": AUDITOR, "permissions": list(Permission.objects.values_list("pk", flat=True))},
    )
    add = client.post(reverse("admin:auth_group_add"), {"name": "Everything"})

    assert (change.status_code, add.status_code) == (403, 403)
    assert _snapshot() == before


def test_opening_a_privacy_request_or_its_history_is_logged_as_a_staff_access(client, world):
    from privacy_requests.models import PrivacyRequest

    request = PrivacyRequest.objects.filter(user=world["consumer"]).get()
    staff_client = _role_client(client, "support agent")
    opened = AccessEvent.objects.filter(user=world["consumer"], staff_user__email="support-agent@staff.example.com")

    change = staff_client.get(reverse("admin:privacy_requests_privacyrequest_change", args=[request.pk]))
    history = staff_client.get(reverse("admin:privacy_requests_privacyrequest_history", args=[request.pk]))

    assert (change.status_code, history.status_code) == (200, 200)
    assert sorted(event.detail.split(":")[0] for event in opened) == [
        "Opened in the admin",
        "Opened its history in the admin",
    ]


def _first_version_url(obj: Any, url_name: str) -> str:
    first = type(obj).history.filter(**{obj._meta.pk.attname: obj.pk}).order_by("history_id").first()
    return reverse(url_name, args=[obj.pk, first.history_id])


def test_history_form_cannot_uncancel_a_deletion(client, db):
    from privacy_requests.models import PrivacyRequest, RequestStatus
    from privacy_requests.services.requests import privacy_request_cancel

    consumer = UserFactory(email="leaving@example.com")
    deletion = privacy_request_deletion_create(user=consumer, language="en")
    privacy_request_cancel(request=deletion, actor=Actor.consumer(consumer))
    staff_client = _role_client(client, "support agent")
    before = _snapshot()

    # Every field of a request is read-only, so the form is valid with nothing in it.
    response = staff_client.post(
        _first_version_url(deletion, "admin:privacy_requests_privacyrequest_simple_history"), {}
    )

    assert response.status_code == 403
    assert PrivacyRequest.objects.get(pk=deletion.pk).status == RequestStatus.CANCELLED
    assert _snapshot() == before


def test_history_form_cannot_point_a_partners_webhook_elsewhere(client, db):
    from consents.models import Partner

    partner = PartnerFactory(slug="adco", name="AdCo", webhook_url="https://adco.example.com/hooks")
    staff_client = _role_client(client, "partner manager")
    before = _snapshot()
    data = {
        "name": "AdCo",
        "slug": "adco",
        "kind": partner.kind,
        "country": partner.country,
        "policy_url": "",
        "status": partner.status,
        "webhook_url": "https://attacker.example.net/collect",
    }

    response = staff_client.post(_first_version_url(partner, "admin:consents_partner_simple_history"), data)

    assert response.status_code == 403
    assert Partner.objects.get(pk=partner.pk).webhook_url == "https://adco.example.com/hooks"
    assert _snapshot() == before


def test_history_form_cannot_flip_a_purposes_legal_basis(client, granted):
    purpose = granted.purpose
    staff_client = _role_client(client, "privacy officer")
    before = _snapshot()
    data = {
        "name": purpose.name,
        "slug": purpose.slug,
        "legal_basis": "legitimate_interest",
        "default_duration_type": "persistent",
        "position": 0,
        "is_active": "on",
    }

    response = staff_client.post(_first_version_url(purpose, "admin:consents_purpose_simple_history"), data)

    assert response.status_code == 403
    assert Purpose.objects.get(pk=purpose.pk).legal_basis == "consent"
    assert _snapshot() == before
