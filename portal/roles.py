"""Staff roles: the groups the admin is run with, each with the least it needs for its job.

This is the one place the mapping lives. ``portal/migrations/0003_staff_roles.py`` creates the
groups from a frozen copy of it (a migration must not import code that changes later; the
privacy-request permissions it names ``portal.*`` became ``privacy_requests.*`` when
``portal/migrations/0005_privacy_requests_move.py`` moved their content types; later permissions are
granted by the ``ROLES_GRANTED`` of ``privacy_requests/migrations/0002_regulator_reports.py``,
``privacy_requests/migrations/0003_authorised_agents.py``, ``consents/migrations/0009_connect_oauth.py``,
``consents/migrations/0011_publication_runs.py`` and ``audit/migrations/0007_operations_dashboard.py``); a test
compares
the live groups with this mapping, so a change here needs a new migration too.

``staff_roles_ensure()`` puts the groups back to this mapping where the migration's data is gone
(``seed_demo``, and test databases that a transactional test has flushed).

Superusers are not a role: they are the only ones who may change who is staff and what each group
may do. Nobody is given the MFA authenticators or the OAuth token tables: they hold secrets.
"""

from django.contrib.auth.models import Group, Permission
from django.db import transaction
from django.db.models import Q

PRIVACY_OFFICER = "Privacy officer"
SUPPORT_AGENT = "Support agent"
PARTNER_MANAGER = "Partner manager"
AUDITOR = "Auditor"

# Notices: categories, purposes, and publishing new notice versions (the change permission on a
# purpose; its notice-bound fields change only through publishing).
_NOTICES = (
    "consents.view_datacategory",
    "consents.add_datacategory",
    "consents.change_datacategory",
    "consents.view_purpose",
    "consents.add_purpose",
    "consents.change_purpose",
    "consents.view_purposeversion",
    "consents.view_publicationrun",
)

# The privacy-request queue, read-only: requests, their extensions, partner erasure tasks.
_REQUESTS_READ = (
    "privacy_requests.view_privacyrequest",
    "privacy_requests.view_privacyrequestextension",
    "privacy_requests.view_privacyrequestpartnertask",
    "privacy_requests.view_agentrequest",
)

_CONSUMERS_READ = (
    "portal.view_user",
    "account.view_emailaddress",
    "consents.view_consent",
    "consents.view_consentreceipt",
)

_AUDIT_TRAIL = (
    "audit.view_auditevent",
    "audit.verify_chain",
    "audit.export_trail",
)

# The operations dashboard and the partner scorecards: aggregates, no consumer's records.
_OVERSIGHT = ("audit.view_operations_dashboard",)

ROLE_PERMISSIONS: dict[str, tuple[str, ...]] = {
    PRIVACY_OFFICER: (
        *_NOTICES,
        *_REQUESTS_READ,
        "privacy_requests.decide_privacyrequest",
        "privacy_requests.verify_agentrequest",
        "privacy_requests.record_privacyrequestpartnertask",
        "privacy_requests.view_consentproof",
        "privacy_requests.view_regulator_reports",
        *_OVERSIGHT,
        *_AUDIT_TRAIL,
        # The audit-trail export is an action on the list of people.
        "portal.view_user",
    ),
    SUPPORT_AGENT: (
        *_CONSUMERS_READ,
        *_REQUESTS_READ,
    ),
    PARTNER_MANAGER: (
        "consents.view_partner",
        "consents.add_partner",
        "consents.change_partner",
        "consents.view_sharing",
        "consents.add_sharing",
        "consents.change_sharing",
        "consents.view_partnercredential",
        "consents.add_partnercredential",
        "consents.change_partnercredential",
        "consents.view_connectedapp",
        "consents.add_connectedapp",
        "consents.change_connectedapp",
        "consents.view_outboxevent",
        "consents.change_outboxevent",
        "consents.view_deliveryattempt",
        # What a sharing refers to.
        "consents.view_purpose",
        "consents.view_datacategory",
    ),
    AUDITOR: (
        *_CONSUMERS_READ,
        *_REQUESTS_READ,
        "privacy_requests.view_consentproof",
        "privacy_requests.view_regulator_reports",
        "consents.view_datacategory",
        "consents.view_purpose",
        "consents.view_purposeversion",
        "consents.view_publicationrun",
        "consents.view_partner",
        "consents.view_sharing",
        "consents.view_partnercredential",
        "consents.view_outboxevent",
        "consents.view_deliveryattempt",
        "audit.view_accessevent",
        *_OVERSIGHT,
        *_AUDIT_TRAIL,
        "auth.view_group",
    ),
}


@transaction.atomic
def staff_roles_ensure() -> None:
    """Create the role groups, or set their permissions back to ``ROLE_PERMISSIONS``."""
    for name, labels in ROLE_PERMISSIONS.items():
        wanted = Q()
        for label in labels:
            app_label, codename = label.split(".")
            wanted |= Q(content_type__app_label=app_label, codename=codename)
        permissions = list(Permission.objects.filter(wanted))
        if len(permissions) != len(set(labels)):
            found = {f"{p.content_type.app_label}.{p.codename}" for p in permissions}
            raise LookupError(f"{name}: no such permission {sorted(set(labels) - found)}")
        group, _created = Group.objects.get_or_create(name=name)
        group.permissions.set(permissions)
