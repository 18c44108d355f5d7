"""Migration 0010 turns an existing access log into monthly partitions and back, rows and ids intact."""

from collections.abc import Iterator
from datetime import UTC, datetime

import pytest
from django.db import connection
from django.db.migrations.executor import MigrationExecutor

from audit.models import AccessEvent
from audit.partitions import is_partitioned, monthly_partitions
from tests.audit.test_partitions import event_create

# The migrations run outside a test transaction, as ``manage.py migrate`` would.
pytestmark = [
    pytest.mark.django_db(transaction=True),
    pytest.mark.skipif(connection.vendor != "postgresql", reason="partitions exist on PostgreSQL only"),
]


def _migrate(target: tuple[str, str]) -> None:
    executor = MigrationExecutor(connection)
    executor.migrate([target])
    executor.loader.build_graph()


@pytest.fixture
def unpartitioned() -> Iterator[None]:
    try:
        _migrate(("audit", "0009_partner_webhook_actions"))
        yield
    finally:
        _migrate(("audit", "0010_access_event_partitions"))


def test_the_migration_partitions_existing_rows_and_reverses(unpartitioned, consent_catalogue, consumer):
    assert not is_partitioned()
    old = event_create(consent_catalogue, consumer, datetime(2061, 3, 9, tzinfo=UTC), "old")

    _migrate(("audit", "0010_access_event_partitions"))

    assert is_partitioned()
    assert datetime(2061, 3, 1, tzinfo=UTC) in monthly_partitions()
    assert AccessEvent.objects.get(partner_event_id="old").pk == old.pk
    newer = event_create(consent_catalogue, consumer, datetime(2061, 3, 10, tzinfo=UTC), "newer")
    assert newer.pk > old.pk  # the sequence carried on where the old table's left off

    _migrate(("audit", "0009_partner_webhook_actions"))

    assert not is_partitioned()
    assert sorted(AccessEvent.objects.values_list("pk", flat=True)) == [old.pk, newer.pk]
    assert event_create(consent_catalogue, consumer, datetime(2061, 3, 11, tzinfo=UTC), "after").pk > newer.pk
