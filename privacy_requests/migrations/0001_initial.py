"""The privacy-request models, moved here from the portal app (``portal/migrations/0005``).

The tables stay where ``portal`` created them (``Meta.db_table``), so this only adds the models to
the migration state: the database is left alone.
"""

import django.db.models.deletion
import django.utils.timezone
import privacy_requests.models
import simple_history.models
import uuid
from django.conf import settings
from django.db import migrations, models


class Migration(migrations.Migration):

    initial = True

    dependencies = [
        ('consents', '0004_encrypt_webhook_secrets'),
        ('portal', '0004_scrub_free_text'),
        migrations.swappable_dependency(settings.AUTH_USER_MODEL),
    ]

    operations = [
        migrations.SeparateDatabaseAndState(
            state_operations=[
                migrations.CreateModel(
                    name='ConsentProof',
                    fields=[
                        ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                        ('principal_id', models.CharField(max_length=80, verbose_name='pseudonymous principal id')),
                        ('receipt_id', models.UUIDField(unique=True, verbose_name='receipt id')),
                        ('purpose_slug', models.SlugField(max_length=64, verbose_name='purpose')),
                        ('notice_version', models.PositiveIntegerField(verbose_name='notice version')),
                        ('event', models.CharField(max_length=24, verbose_name='event')),
                        ('issued_at', models.DateTimeField(verbose_name='issued at')),
                        ('receipt_sha256', models.CharField(max_length=64, verbose_name='SHA-256 of the receipt')),
                        ('jws', models.TextField(verbose_name='signed receipt (JWS)')),
                        ('kept_since', models.DateTimeField(default=django.utils.timezone.now, verbose_name='kept since')),
                        ('retain_until', models.DateTimeField(verbose_name='kept until')),
                    ],
                    options={
                        'verbose_name': 'consent proof',
                        'verbose_name_plural': 'consent proofs',
                        'db_table': 'portal_consentproof',
                        'ordering': ['principal_id', 'issued_at'],
                        'indexes': [models.Index(fields=['principal_id', 'issued_at'], name='consentproof_by_principal'), models.Index(fields=['retain_until'], name='consentproof_purge_due')],
                    },
                ),
                migrations.CreateModel(
                    name='HistoricalPrivacyRequest',
                    fields=[
                        ('id', models.UUIDField(db_index=True, default=uuid.uuid4, editable=False)),
                        ('kind', models.CharField(choices=[('export', 'Copy of your data'), ('deletion', 'Deletion of your account')], max_length=16, verbose_name='kind')),
                        ('status', models.CharField(choices=[('received', 'Received'), ('processing', 'Processing'), ('waiting_partners', 'Waiting for partners'), ('completed', 'Completed'), ('rejected', 'Rejected'), ('cancelled', 'Cancelled')], default='received', max_length=24, verbose_name='status')),
                        ('jurisdiction', models.CharField(choices=[('gdpr', 'European Union / UK (GDPR)'), ('ccpa', 'California (CCPA/CPRA)'), ('other', 'Other')], max_length=8, verbose_name='privacy law')),
                        ('language', models.CharField(default='en', max_length=16, verbose_name='language')),
                        ('created_at', models.DateTimeField(default=django.utils.timezone.now, verbose_name='received at')),
                        ('due_at', models.DateTimeField(verbose_name='due by')),
                        ('updated_at', models.DateTimeField(default=django.utils.timezone.now, verbose_name='updated at')),
                        ('completed_at', models.DateTimeField(blank=True, null=True, verbose_name='completed at')),
                        ('cancelled_at', models.DateTimeField(blank=True, null=True, verbose_name='cancelled at')),
                        ('rejected_at', models.DateTimeField(blank=True, null=True, verbose_name='rejected at')),
                        ('rejection_reason', models.TextField(blank=True, verbose_name='reason for rejection')),
                        ('escalated_at', models.DateTimeField(blank=True, help_text='Set when the due date passed unfinished.', null=True, verbose_name='escalated to staff at')),
                        ('result_file', models.TextField(blank=True, max_length=200, verbose_name='result file')),
                        ('file_size', models.PositiveBigIntegerField(blank=True, null=True, verbose_name='file size (bytes)')),
                        ('file_expires_at', models.DateTimeField(blank=True, null=True, verbose_name='download expires at')),
                        ('file_deleted_at', models.DateTimeField(blank=True, null=True, verbose_name='file deleted at')),
                        ('download_count', models.PositiveIntegerField(default=0, verbose_name='downloads')),
                        ('last_downloaded_at', models.DateTimeField(blank=True, null=True, verbose_name='last downloaded at')),
                        ('grace_ends_at', models.DateTimeField(blank=True, null=True, verbose_name='grace period ends at')),
                        ('history_id', models.AutoField(primary_key=True, serialize=False)),
                        ('history_date', models.DateTimeField(db_index=True)),
                        ('history_change_reason', models.CharField(max_length=100, null=True)),
                        ('history_type', models.CharField(choices=[('+', 'Created'), ('~', 'Changed'), ('-', 'Deleted')], max_length=1)),
                        ('history_user', models.ForeignKey(null=True, on_delete=django.db.models.deletion.SET_NULL, related_name='+', to=settings.AUTH_USER_MODEL)),
                        ('user', models.ForeignKey(blank=True, db_constraint=False, null=True, on_delete=django.db.models.deletion.DO_NOTHING, related_name='+', to=settings.AUTH_USER_MODEL, verbose_name='consumer')),
                    ],
                    options={
                        'verbose_name': 'historical privacy request',
                        'verbose_name_plural': 'historical privacy requests',
                        'db_table': 'portal_historicalprivacyrequest',
                        'ordering': ('-history_date', '-history_id'),
                        'get_latest_by': ('history_date', 'history_id'),
                    },
                    bases=(simple_history.models.HistoricalChanges, models.Model),
                ),
                migrations.CreateModel(
                    name='PrivacyRequest',
                    fields=[
                        ('id', models.UUIDField(default=uuid.uuid4, editable=False, primary_key=True, serialize=False)),
                        ('kind', models.CharField(choices=[('export', 'Copy of your data'), ('deletion', 'Deletion of your account')], max_length=16, verbose_name='kind')),
                        ('status', models.CharField(choices=[('received', 'Received'), ('processing', 'Processing'), ('waiting_partners', 'Waiting for partners'), ('completed', 'Completed'), ('rejected', 'Rejected'), ('cancelled', 'Cancelled')], default='received', max_length=24, verbose_name='status')),
                        ('jurisdiction', models.CharField(choices=[('gdpr', 'European Union / UK (GDPR)'), ('ccpa', 'California (CCPA/CPRA)'), ('other', 'Other')], max_length=8, verbose_name='privacy law')),
                        ('language', models.CharField(default='en', max_length=16, verbose_name='language')),
                        ('created_at', models.DateTimeField(default=django.utils.timezone.now, verbose_name='received at')),
                        ('due_at', models.DateTimeField(verbose_name='due by')),
                        ('updated_at', models.DateTimeField(default=django.utils.timezone.now, verbose_name='updated at')),
                        ('completed_at', models.DateTimeField(blank=True, null=True, verbose_name='completed at')),
                        ('cancelled_at', models.DateTimeField(blank=True, null=True, verbose_name='cancelled at')),
                        ('rejected_at', models.DateTimeField(blank=True, null=True, verbose_name='rejected at')),
                        ('rejection_reason', models.TextField(blank=True, verbose_name='reason for rejection')),
                        ('escalated_at', models.DateTimeField(blank=True, help_text='Set when the due date passed unfinished.', null=True, verbose_name='escalated to staff at')),
                        ('progress', models.PositiveSmallIntegerField(default=0, verbose_name='progress (%)')),
                        ('result_file', models.FileField(blank=True, max_length=200, upload_to=privacy_requests.models.export_upload_to, verbose_name='result file')),
                        ('file_size', models.PositiveBigIntegerField(blank=True, null=True, verbose_name='file size (bytes)')),
                        ('file_expires_at', models.DateTimeField(blank=True, null=True, verbose_name='download expires at')),
                        ('file_deleted_at', models.DateTimeField(blank=True, null=True, verbose_name='file deleted at')),
                        ('download_count', models.PositiveIntegerField(default=0, verbose_name='downloads')),
                        ('last_downloaded_at', models.DateTimeField(blank=True, null=True, verbose_name='last downloaded at')),
                        ('grace_ends_at', models.DateTimeField(blank=True, null=True, verbose_name='grace period ends at')),
                        ('cancel_nonce', models.CharField(blank=True, editable=False, max_length=32, verbose_name='cancel token nonce')),
                        ('contact_email', models.EmailField(blank=True, editable=False, max_length=254, verbose_name='contact address until completion')),
                        ('user', models.ForeignKey(on_delete=django.db.models.deletion.CASCADE, related_name='privacy_requests', to=settings.AUTH_USER_MODEL, verbose_name='consumer')),
                    ],
                    options={
                        'verbose_name': 'privacy request',
                        'verbose_name_plural': 'privacy requests',
                        'db_table': 'portal_privacyrequest',
                        'ordering': ['-created_at'],
                        'permissions': [('decide_privacyrequest', 'Can extend or reject a privacy request')],
                    },
                ),
                migrations.CreateModel(
                    name='HistoricalPrivacyRequestPartnerTask',
                    fields=[
                        ('id', models.BigIntegerField(auto_created=True, blank=True, db_index=True, verbose_name='ID')),
                        ('state', models.CharField(choices=[('pending', 'Waiting for confirmation'), ('acknowledged', 'Confirmed by the partner'), ('failed', 'Partner reported a failure'), ('recorded', 'Confirmation recorded by staff')], default='pending', max_length=16, verbose_name='state')),
                        ('acked_at', models.DateTimeField(blank=True, null=True, verbose_name='confirmed at')),
                        ('ack_detail', models.CharField(blank=True, max_length=1000, verbose_name="partner's detail")),
                        ('staff_note', models.TextField(blank=True, help_text='How the confirmation arrived when it did not come through the API.', verbose_name='staff note')),
                        ('created_at', models.DateTimeField(default=django.utils.timezone.now, verbose_name='created at')),
                        ('text_removed_at', models.DateTimeField(blank=True, editable=False, null=True, verbose_name='notes removed at')),
                        ('history_id', models.AutoField(primary_key=True, serialize=False)),
                        ('history_date', models.DateTimeField(db_index=True)),
                        ('history_change_reason', models.CharField(max_length=100, null=True)),
                        ('history_type', models.CharField(choices=[('+', 'Created'), ('~', 'Changed'), ('-', 'Deleted')], max_length=1)),
                        ('event', models.ForeignKey(blank=True, db_constraint=False, null=True, on_delete=django.db.models.deletion.DO_NOTHING, related_name='+', to='consents.outboxevent', verbose_name='erasure event')),
                        ('history_user', models.ForeignKey(null=True, on_delete=django.db.models.deletion.SET_NULL, related_name='+', to=settings.AUTH_USER_MODEL)),
                        ('partner', models.ForeignKey(blank=True, db_constraint=False, null=True, on_delete=django.db.models.deletion.DO_NOTHING, related_name='+', to='consents.partner', verbose_name='partner')),
                        ('recorded_by', models.ForeignKey(blank=True, db_constraint=False, null=True, on_delete=django.db.models.deletion.DO_NOTHING, related_name='+', to=settings.AUTH_USER_MODEL, verbose_name='recorded by')),
                        ('request', models.ForeignKey(blank=True, db_constraint=False, null=True, on_delete=django.db.models.deletion.DO_NOTHING, related_name='+', to='privacy_requests.privacyrequest', verbose_name='request')),
                    ],
                    options={
                        'verbose_name': 'historical partner erasure task',
                        'verbose_name_plural': 'historical partner erasure tasks',
                        'db_table': 'portal_historicalprivacyrequestpartnertask',
                        'ordering': ('-history_date', '-history_id'),
                        'get_latest_by': ('history_date', 'history_id'),
                    },
                    bases=(simple_history.models.HistoricalChanges, models.Model),
                ),
                migrations.CreateModel(
                    name='HistoricalPrivacyRequestExtension',
                    fields=[
                        ('id', models.BigIntegerField(auto_created=True, blank=True, db_index=True, verbose_name='ID')),
                        ('months', models.PositiveSmallIntegerField(default=0, verbose_name='months')),
                        ('days', models.PositiveSmallIntegerField(default=0, verbose_name='days')),
                        ('reason', models.TextField(verbose_name='reason')),
                        ('previous_due_at', models.DateTimeField(verbose_name='previous due date')),
                        ('new_due_at', models.DateTimeField(verbose_name='new due date')),
                        ('created_at', models.DateTimeField(default=django.utils.timezone.now, verbose_name='extended at')),
                        ('text_removed_at', models.DateTimeField(blank=True, editable=False, null=True, verbose_name='reason removed at')),
                        ('history_id', models.AutoField(primary_key=True, serialize=False)),
                        ('history_date', models.DateTimeField(db_index=True)),
                        ('history_change_reason', models.CharField(max_length=100, null=True)),
                        ('history_type', models.CharField(choices=[('+', 'Created'), ('~', 'Changed'), ('-', 'Deleted')], max_length=1)),
                        ('by', models.ForeignKey(blank=True, db_constraint=False, null=True, on_delete=django.db.models.deletion.DO_NOTHING, related_name='+', to=settings.AUTH_USER_MODEL, verbose_name='extended by')),
                        ('history_user', models.ForeignKey(null=True, on_delete=django.db.models.deletion.SET_NULL, related_name='+', to=settings.AUTH_USER_MODEL)),
                        ('request', models.ForeignKey(blank=True, db_constraint=False, null=True, on_delete=django.db.models.deletion.DO_NOTHING, related_name='+', to='privacy_requests.privacyrequest', verbose_name='request')),
                    ],
                    options={
                        'verbose_name': 'historical deadline extension',
                        'verbose_name_plural': 'historical deadline extensions',
                        'db_table': 'portal_historicalprivacyrequestextension',
                        'ordering': ('-history_date', '-history_id'),
                        'get_latest_by': ('history_date', 'history_id'),
                    },
                    bases=(simple_history.models.HistoricalChanges, models.Model),
                ),
                migrations.CreateModel(
                    name='PrivacyRequestExtension',
                    fields=[
                        ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                        ('months', models.PositiveSmallIntegerField(default=0, verbose_name='months')),
                        ('days', models.PositiveSmallIntegerField(default=0, verbose_name='days')),
                        ('reason', models.TextField(verbose_name='reason')),
                        ('previous_due_at', models.DateTimeField(verbose_name='previous due date')),
                        ('new_due_at', models.DateTimeField(verbose_name='new due date')),
                        ('created_at', models.DateTimeField(default=django.utils.timezone.now, verbose_name='extended at')),
                        ('text_removed_at', models.DateTimeField(blank=True, editable=False, null=True, verbose_name='reason removed at')),
                        ('by', models.ForeignKey(blank=True, null=True, on_delete=django.db.models.deletion.SET_NULL, related_name='+', to=settings.AUTH_USER_MODEL, verbose_name='extended by')),
                        ('request', models.ForeignKey(on_delete=django.db.models.deletion.CASCADE, related_name='extensions', to='privacy_requests.privacyrequest', verbose_name='request')),
                    ],
                    options={
                        'verbose_name': 'deadline extension',
                        'verbose_name_plural': 'deadline extensions',
                        'db_table': 'portal_privacyrequestextension',
                        'ordering': ['created_at'],
                    },
                ),
                migrations.CreateModel(
                    name='PrivacyRequestPartnerTask',
                    fields=[
                        ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                        ('state', models.CharField(choices=[('pending', 'Waiting for confirmation'), ('acknowledged', 'Confirmed by the partner'), ('failed', 'Partner reported a failure'), ('recorded', 'Confirmation recorded by staff')], default='pending', max_length=16, verbose_name='state')),
                        ('acked_at', models.DateTimeField(blank=True, null=True, verbose_name='confirmed at')),
                        ('ack_detail', models.CharField(blank=True, max_length=1000, verbose_name="partner's detail")),
                        ('staff_note', models.TextField(blank=True, help_text='How the confirmation arrived when it did not come through the API.', verbose_name='staff note')),
                        ('created_at', models.DateTimeField(default=django.utils.timezone.now, verbose_name='created at')),
                        ('text_removed_at', models.DateTimeField(blank=True, editable=False, null=True, verbose_name='notes removed at')),
                        ('event', models.ForeignKey(blank=True, null=True, on_delete=django.db.models.deletion.SET_NULL, related_name='privacy_tasks', to='consents.outboxevent', verbose_name='erasure event')),
                        ('partner', models.ForeignKey(on_delete=django.db.models.deletion.PROTECT, related_name='privacy_tasks', to='consents.partner', verbose_name='partner')),
                        ('recorded_by', models.ForeignKey(blank=True, null=True, on_delete=django.db.models.deletion.SET_NULL, related_name='+', to=settings.AUTH_USER_MODEL, verbose_name='recorded by')),
                        ('request', models.ForeignKey(on_delete=django.db.models.deletion.CASCADE, related_name='partner_tasks', to='privacy_requests.privacyrequest', verbose_name='request')),
                    ],
                    options={
                        'verbose_name': 'partner erasure task',
                        'verbose_name_plural': 'partner erasure tasks',
                        'db_table': 'portal_privacyrequestpartnertask',
                        'ordering': ['partner__name'],
                        'permissions': [('record_privacyrequestpartnertask', "Can record a partner's confirmation received by other means")],
                    },
                ),
                migrations.AddIndex(
                    model_name='privacyrequest',
                    index=models.Index(fields=['user', '-created_at'], name='privacyrequest_by_user_recent'),
                ),
                migrations.AddIndex(
                    model_name='privacyrequest',
                    index=models.Index(fields=['status', 'due_at'], name='privacyrequest_queue_by_due'),
                ),
                migrations.AddIndex(
                    model_name='privacyrequest',
                    index=models.Index(fields=['kind', 'status', 'grace_ends_at'], name='privacyrequest_grace_ending'),
                ),
                migrations.AddIndex(
                    model_name='privacyrequest',
                    index=models.Index(condition=models.Q(('result_file', ''), _negated=True), fields=['file_expires_at'], name='privacyrequest_file_expiry'),
                ),
                migrations.AddConstraint(
                    model_name='privacyrequest',
                    constraint=models.UniqueConstraint(condition=models.Q(('kind', 'export'), ('status__in', ['received', 'processing'])), fields=('user',), name='privacyrequest_one_active_export'),
                ),
                migrations.AddConstraint(
                    model_name='privacyrequest',
                    constraint=models.UniqueConstraint(condition=models.Q(('kind', 'deletion'), ('status__in', ['received', 'processing', 'waiting_partners'])), fields=('user',), name='privacyrequest_one_active_deletion'),
                ),
                migrations.AddConstraint(
                    model_name='privacyrequest',
                    constraint=models.CheckConstraint(condition=models.Q(('progress__lte', 100)), name='privacyrequest_progress_percent'),
                ),
                migrations.AddConstraint(
                    model_name='privacyrequest',
                    constraint=models.CheckConstraint(condition=models.Q(('due_at__gt', models.F('created_at'))), name='privacyrequest_due_after'),
                ),
                migrations.AddConstraint(
                    model_name='privacyrequest',
                    constraint=models.CheckConstraint(condition=models.Q(models.Q(('status', 'completed'), _negated=True), ('completed_at__isnull', False), _connector='OR'), name='privacyrequest_completed_has_date'),
                ),
                migrations.AddConstraint(
                    model_name='privacyrequest',
                    constraint=models.CheckConstraint(condition=models.Q(models.Q(('status', 'rejected'), _negated=True), models.Q(('rejected_at__isnull', False), models.Q(('rejection_reason', ''), _negated=True)), _connector='OR'), name='privacyrequest_rejected_has_reason'),
                ),
                migrations.AddConstraint(
                    model_name='privacyrequest',
                    constraint=models.CheckConstraint(condition=models.Q(models.Q(('status', 'cancelled'), _negated=True), models.Q(('kind', 'deletion'), ('cancelled_at__isnull', False)), _connector='OR'), name='privacyrequest_only_deletion_cancelled'),
                ),
                migrations.AddConstraint(
                    model_name='privacyrequest',
                    constraint=models.CheckConstraint(condition=models.Q(models.Q(('kind', 'deletion'), _negated=True), ('grace_ends_at__isnull', False), _connector='OR'), name='privacyrequest_deletion_has_grace'),
                ),
                migrations.AddConstraint(
                    model_name='privacyrequestextension',
                    constraint=models.CheckConstraint(condition=models.Q(('months__gt', 0), ('days__gt', 0), _connector='OR'), name='extension_extends_something'),
                ),
                migrations.AddConstraint(
                    model_name='privacyrequestextension',
                    constraint=models.CheckConstraint(condition=models.Q(models.Q(('reason', ''), _negated=True), ('text_removed_at__isnull', False), _connector='OR'), name='extension_has_reason'),
                ),
                migrations.AddIndex(
                    model_name='privacyrequestpartnertask',
                    index=models.Index(fields=['state', 'request'], name='partnertask_open_by_request'),
                ),
                migrations.AddConstraint(
                    model_name='privacyrequestpartnertask',
                    constraint=models.UniqueConstraint(fields=('request', 'partner'), name='partnertask_unique_request_partner'),
                ),
                migrations.AddConstraint(
                    model_name='privacyrequestpartnertask',
                    constraint=models.CheckConstraint(condition=models.Q(models.Q(('state__in', ['acknowledged', 'recorded']), _negated=True), ('acked_at__isnull', False), _connector='OR'), name='partnertask_done_has_date'),
                ),
                migrations.AddConstraint(
                    model_name='privacyrequestpartnertask',
                    constraint=models.CheckConstraint(condition=models.Q(models.Q(('state', 'recorded'), _negated=True), models.Q(('staff_note', ''), _negated=True), ('text_removed_at__isnull', False), _connector='OR'), name='partnertask_recorded_has_note'),
                ),
            ],
        ),
    ]
