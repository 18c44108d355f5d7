"""A database seeded before the privacy-request models moved out of the portal app upgrades in place.

The move changes only the migration state (the tables keep their names) and relabels the content
types, so rows, their history and the staff groups' permissions come through untouched.
"""

import uuid
from collections.abc import Iterator
from datetime import timedelta
from io import StringIO

import pytest
from django.apps.registry import Apps
from django.contrib.auth.models import Group
from django.contrib.contenttypes.models import ContentType
from django.core.management import call_command
from django.db import connection
from django.db.migrations.executor import MigrationExecutor
from django.utils import timezone

from consents.models import webhook_secret_generate
from privacy_requests.models import ConsentProof, PrivacyRequest, PrivacyRequestExtension, PrivacyRequestPartnerTask

# The migrations run outside a test transaction, as ``manage.py migrate`` would.
pytestmark = pytest.mark.django_db(transaction=True)

MOVE = [("privacy_requests", "0001_initial"), ("portal", "0005_privacy_requests_move")]


def _migrate(targets: list[tuple[str, str | None]] | None = None) -> Apps:
    """Migrate to ``targets`` (the latest migrations when None); the models as they then are."""
    executor = MigrationExecutor(connection)
    executor.migrate(targets or executor.loader.graph.leaf_nodes())
    executor.loader.build_graph()
    ContentType.objects.clear_cache()
    return executor.loader.project_state(list(executor.loader.applied_migrations)).apps


@pytest.fixture
def before_the_move() -> Iterator[Apps]:
    """The database as it was before the move: privacy_requests unmigrated, the models in portal."""
    try:
        # Unapplying privacy_requests' first migration unapplies portal 0005, which depends on it.
        yield _migrate([("privacy_requests", None)])
    finally:
        # Whatever happened, later tests get the latest schema and state.
        _migrate()


def test_a_database_seeded_before_the_move_upgrades_in_place(before_the_move):
    old = before_the_move
    assert not old.is_installed("privacy_requests")
    # Made through the old state's models: the user table then lacks columns later portal migrations add.
    consumer = old.get_model("portal", "User").objects.create(email="before@example.com", password="!")
    # Also through the old state: consents' later migrations (after portal 0005) add partner columns.
    partner = old.get_model("consents", "Partner").objects.create(
        slug="adco", name="AdCo", kind="advertiser", country="DE", webhook_secret=webhook_secret_generate()
    )
    now = timezone.now()
    request = old.get_model("portal", "PrivacyRequest").objects.create(
        user_id=consumer.pk, kind="export", jurisdiction="gdpr", due_at=now + timedelta(days=30)
    )
    old.get_model("portal", "HistoricalPrivacyRequest").objects.create(
        id=request.pk,
        user_id=consumer.pk,
        kind="export",
        status="received",
        jurisdiction="gdpr",
        due_at=request.due_at,
        history_date=now,
        history_type="+",
    )
    task = old.get_model("portal", "PrivacyRequestPartnerTask").objects.create(
        request_id=request.pk, partner_id=partner.pk
    )
    extension = old.get_model("portal", "PrivacyRequestExtension").objects.create(
        request_id=request.pk,
        months=1,
        reason="Many partners to ask",
        previous_due_at=request.due_at,
        new_due_at=request.due_at + timedelta(days=30),
    )
    proof = old.get_model("portal", "ConsentProof").objects.create(
        principal_id="pseudonym-1",
        receipt_id=uuid.uuid4(),
        purpose_slug="offers",
        notice_version=1,
        event="granted",
        issued_at=now,
        receipt_sha256="0" * 64,
        jws="header.payload.signature",
        retain_until=now + timedelta(days=365),
    )
    decide = old.get_model("auth", "Permission").objects.get(
        content_type__app_label="portal", codename="decide_privacyrequest"
    )
    group = old.get_model("auth", "Group").objects.create(name="Queue deciders")
    group.permissions.add(decide)

    _migrate()

    upgraded = PrivacyRequest.objects.get(pk=request.pk)
    assert (upgraded.user_id, upgraded.kind, upgraded.status) == (consumer.pk, "export", "received")
    assert list(upgraded.history.values_list("history_type", flat=True)) == ["+"]
    assert PrivacyRequestPartnerTask.objects.get(pk=task.pk).partner_id == partner.pk
    assert PrivacyRequestExtension.objects.get(pk=extension.pk).request == upgraded
    assert ConsentProof.objects.get(pk=proof.pk).receipt_id == proof.receipt_id
    # The content types moved with their ids, and the permissions hanging off them with them.
    moved = ContentType.objects.get_for_model(PrivacyRequest)
    assert (moved.app_label, moved.model) == ("privacy_requests", "privacyrequest")
    assert not ContentType.objects.filter(app_label="portal", model__contains="privacyrequest").exists()
    assert not ContentType.objects.filter(app_label="portal", model="consentproof").exists()
    held = Group.objects.get(pk=group.pk).permissions.get()
    assert (held.pk, held.content_type_id) == (decide.pk, moved.pk)
    assert f"{held.content_type.app_label}.{held.codename}" == "privacy_requests.decide_privacyrequest"


@pytest.mark.parametrize(("app_label", "name"), MOVE)
def test_the_move_changes_no_table(app_label, name):
    out = StringIO()
    call_command("sqlmigrate", app_label, name, stdout=out)

    statements = [line for line in out.getvalue().splitlines() if line.strip() and not line.startswith("--")]
    assert set(statements) <= {"BEGIN;", "COMMIT;"}, out.getvalue()
