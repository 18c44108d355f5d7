"""Access events partitioned by month (``accessed_at``) on PostgreSQL; SQLite keeps its one table.

The old table is renamed, a table ``PARTITION BY RANGE (accessed_at)`` takes its name with one
partition per month that has events, this month and ``AHEAD`` months after it, and a DEFAULT
partition; the rows are copied, the old table dropped, then the keys, indexes and foreign keys are
built under their old names (cheaper after the copy than during it). PostgreSQL requires every unique
constraint of a partitioned table to contain the partition key, so the primary key becomes
``(id, accessed_at)`` and the partner's idempotency key ``(partner_id, partner_event_id,
accessed_at)``; Django's model state is unchanged (see ``audit.models.AccessEvent``). ``id`` keeps
drawing from a sequence owned by the column (PostgreSQL 15 has no identity columns on partitioned
tables). The SQL here is a frozen copy: ``audit.partitions`` owns the partitions from now on.
"""

from datetime import UTC, datetime

from django.db import migrations, models

TABLE = "audit_accessevent"
OLD = "audit_accessevent_unpartitioned"
AHEAD = 3
COLUMNS = (
    "id, partner_event_id, categories, action, accessed_at, received_at, detail, verdict, content_hash, "
    "partner_id, purpose_id, staff_user_id, user_id, staff_reason, staff_records, staff_reference"
)
COLUMN_DDL = """
    id bigint NOT NULL,
    partner_event_id varchar(100) NOT NULL,
    categories jsonb NOT NULL,
    action varchar(16) NOT NULL,
    accessed_at timestamp with time zone NOT NULL,
    received_at timestamp with time zone NOT NULL,
    detail varchar(500) NOT NULL,
    verdict varchar(16) NOT NULL,
    content_hash varchar(64) NOT NULL,
    partner_id bigint NOT NULL,
    purpose_id bigint NOT NULL,
    staff_user_id bigint NULL,
    user_id bigint NOT NULL,
    staff_reason varchar(24) DEFAULT '' NOT NULL,
    staff_records varchar(64) DEFAULT '' NOT NULL,
    staff_reference varchar(64) DEFAULT '' NOT NULL
"""
INDEXES = (
    f"CREATE INDEX access_by_user_partner ON {TABLE} (user_id, partner_id, accessed_at DESC)",
    f"CREATE INDEX access_flagged_recent ON {TABLE} (verdict, received_at DESC)",
    f"CREATE INDEX access_timeline_by_user ON {TABLE} (user_id, accessed_at DESC, id DESC)",
    f"CREATE INDEX audit_accessevent_partner_id_63c86ca2 ON {TABLE} (partner_id)",
    f"CREATE INDEX audit_accessevent_purpose_id_fe1ec496 ON {TABLE} (purpose_id)",
    f"CREATE INDEX audit_accessevent_staff_user_id_f9377bc0 ON {TABLE} (staff_user_id)",
    f"CREATE INDEX audit_accessevent_user_id_368a285a ON {TABLE} (user_id)",
    f"ALTER TABLE {TABLE} ADD CONSTRAINT audit_accessevent_partner_id_63c86ca2_fk_consents_partner_id "
    "FOREIGN KEY (partner_id) REFERENCES consents_partner (id) DEFERRABLE INITIALLY DEFERRED",
    f"ALTER TABLE {TABLE} ADD CONSTRAINT audit_accessevent_purpose_id_fe1ec496_fk_consents_purpose_id "
    "FOREIGN KEY (purpose_id) REFERENCES consents_purpose (id) DEFERRABLE INITIALLY DEFERRED",
    f"ALTER TABLE {TABLE} ADD CONSTRAINT audit_accessevent_staff_user_id_f9377bc0_fk_portal_user_id "
    "FOREIGN KEY (staff_user_id) REFERENCES portal_user (id) DEFERRABLE INITIALLY DEFERRED",
    f"ALTER TABLE {TABLE} ADD CONSTRAINT audit_accessevent_user_id_368a285a_fk_portal_user_id "
    "FOREIGN KEY (user_id) REFERENCES portal_user (id) DEFERRABLE INITIALLY DEFERRED",
)


def _add_months(month: datetime, n: int) -> datetime:
    index = month.year * 12 + month.month - 1 + n
    return datetime(index // 12, index % 12 + 1, 1, tzinfo=UTC)


def partition(apps, schema_editor):
    if schema_editor.connection.vendor != "postgresql":
        return
    run = schema_editor.execute
    with schema_editor.connection.cursor() as cursor:
        cursor.execute(f"LOCK TABLE {TABLE} IN ACCESS EXCLUSIVE MODE")
        cursor.execute(
            f"SELECT DISTINCT date_trunc('month', accessed_at AT TIME ZONE 'UTC') FROM {TABLE}"  # noqa: S608
        )
        present = {row[0].replace(tzinfo=UTC) for row in cursor.fetchall()}
        cursor.execute(f"SELECT coalesce(max(id), 0) FROM {TABLE}")  # noqa: S608
        last_id = cursor.fetchone()[0]
    now = datetime.now(UTC)
    this_month = datetime(now.year, now.month, 1, tzinfo=UTC)
    months = sorted(present | {_add_months(this_month, n) for n in range(AHEAD + 1)})
    run(f"ALTER TABLE {TABLE} RENAME TO {OLD}")
    run(f"CREATE TABLE {TABLE} ({COLUMN_DDL}) PARTITION BY RANGE (accessed_at)")
    for month in months:
        run(
            f"CREATE TABLE {TABLE}_p{month:%Y%m} PARTITION OF {TABLE} "
            f"FOR VALUES FROM ('{month.isoformat()}') TO ('{_add_months(month, 1).isoformat()}')"
        )
    run(f"CREATE TABLE {TABLE}_default PARTITION OF {TABLE} DEFAULT")
    run(f"INSERT INTO {TABLE} ({COLUMNS}) SELECT {COLUMNS} FROM {OLD}")  # noqa: S608
    run(f"DROP TABLE {OLD}")  # its identity sequence goes with it
    run(f"CREATE SEQUENCE {TABLE}_id_seq OWNED BY {TABLE}.id")
    run(f"SELECT setval('{TABLE}_id_seq', {int(last_id) + 1}, false)")
    run(f"ALTER TABLE {TABLE} ALTER COLUMN id SET DEFAULT nextval('{TABLE}_id_seq')")
    run(f"ALTER TABLE {TABLE} ADD CONSTRAINT audit_accessevent_pkey PRIMARY KEY (id, accessed_at)")
    run(
        f"ALTER TABLE {TABLE} ADD CONSTRAINT accessevent_unique_partner_id "
        "UNIQUE (partner_id, partner_event_id, accessed_at)"
    )
    for statement in INDEXES:
        run(statement)


def unpartition(apps, schema_editor):
    if schema_editor.connection.vendor != "postgresql":
        return
    run = schema_editor.execute
    with schema_editor.connection.cursor() as cursor:
        cursor.execute(f"SELECT coalesce(max(id), 0) FROM {TABLE}")  # noqa: S608
        last_id = cursor.fetchone()[0]
    run(f"ALTER TABLE {TABLE} RENAME TO {OLD}")
    run(f"CREATE TABLE {TABLE} ({COLUMN_DDL})")
    run(f"INSERT INTO {TABLE} ({COLUMNS}) SELECT {COLUMNS} FROM {OLD}")  # noqa: S608
    run(f"DROP TABLE {OLD}")  # with its partitions and its sequence
    run(f"ALTER TABLE {TABLE} ALTER COLUMN id ADD GENERATED BY DEFAULT AS IDENTITY (START WITH {int(last_id) + 1})")
    run(f"ALTER TABLE {TABLE} ADD CONSTRAINT audit_accessevent_pkey PRIMARY KEY (id)")
    run(f"ALTER TABLE {TABLE} ADD CONSTRAINT accessevent_unique_partner_id UNIQUE (partner_id, partner_event_id)")
    for statement in INDEXES:
        run(statement)


class Migration(migrations.Migration):
    atomic = True

    dependencies = [
        ("audit", "0009_partner_webhook_actions"),
    ]

    operations = [
        migrations.AlterField(
            model_name="auditevent",
            name="action",
            field=models.CharField(choices=[('consent.granted', 'Consent given'), ('consent.revoked', 'Consent withdrawn'), ('consent.expired', 'Consent expired'), ('consent.reconsent_required', 'New notice: decision needed'), ('consent.expiry_reminder_sent', 'Consent expiry reminder sent'), ('gpc.honoured', 'Global Privacy Control signal honoured'), ('purpose.version_published', 'Purpose notice published'), ('partner.credential_created', 'Partner API credential created'), ('partner.credential_rotated', 'Partner API credential rotated'), ('partner.credential_revoked', 'Partner API credential revoked'), ('partner.event_acknowledged', 'Partner acknowledged an event'), ('partner.webhook_disabled', 'Partner webhook disabled'), ('partner.webhook_enabled', 'Partner webhook enabled'), ('partner.webhook_secret_rotated', 'Partner webhook secret rotated'), ('partner.webhook_url_changed', 'Partner webhook URL changed'), ('partner.webhook_test_sent', 'Partner test event sent'), ('partner.suspended', 'Partner suspended'), ('partner.resumed', 'Partner reinstated'), ('outbox.event_redriven', 'Partner event sent again'), ('access.staff_viewed', "Staff opened a consumer's records"), ('audit.trail_exported', 'Audit trail exported'), ('privacy_request.received', 'Privacy request received'), ('privacy_request.processing', 'Privacy request being processed'), ('privacy_request.waiting_partners', 'Privacy request waiting for partners'), ('privacy_request.completed', 'Privacy request completed'), ('privacy_request.rejected', 'Privacy request rejected'), ('privacy_request.cancelled', 'Privacy request cancelled'), ('privacy_request.downloaded', 'Data export downloaded'), ('privacy_request.file_deleted', 'Data export file deleted'), ('privacy_request.erasure_requested', 'Partners asked to erase data'), ('privacy_request.partner_acknowledged', 'Partner confirmed the erasure'), ('privacy_request.partner_failed', 'Partner reported a failed erasure'), ('privacy_request.partner_recorded', 'Partner confirmation recorded by staff'), ('privacy_request.extended', 'Privacy request deadline extended'), ('privacy_request.escalated', 'Overdue privacy request escalated'), ('privacy_request.retention_applied', 'Privacy request retention applied'), ('consent_proof.purged', 'Expired consent proofs purged'), ('access_events.purged', 'Access events past their retention deleted'), ('profile.updated', 'Profile updated'), ('account.scrubbed', 'Account erased'), ('account.free_text_scrubbed', 'Free text erased with the account'), ('security.signed_up', 'Account created'), ('security.logged_in', 'Signed in'), ('security.password_changed', 'Password changed'), ('security.password_set', 'Password set'), ('security.password_reset', 'Password reset'), ('security.email_added', 'Email address added'), ('security.email_removed', 'Email address removed'), ('security.email_changed', 'Primary email address changed'), ('security.email_confirmed', 'Email address confirmed'), ('security.mfa_added', 'Two-factor authentication turned on'), ('security.mfa_removed', 'Two-factor authentication turned off'), ('security.mfa_reset', 'Recovery codes regenerated')], max_length=64, verbose_name='action'),
        ),
        migrations.RunPython(partition, unpartition, elidable=False),
    ]
