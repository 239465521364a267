"""image lifecycle: GC candidates, pins and tombstones, retention, immutability, naming, quotas, job runs

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-06 20:24:01.884933
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = '0005'
down_revision = '0004'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('blob_deletions',
    sa.Column('digest', sa.String(length=160), nullable=False),
    sa.Column('started_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('digest', name=op.f('pk_blob_deletions'))
    )
    op.create_table('gc_candidates',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=True, nullable=False),
    sa.Column('kind', sa.String(length=16), nullable=False),
    sa.Column('repository_id', sa.Integer(), nullable=True),
    sa.Column('digest', sa.String(length=160), nullable=False),
    sa.Column('reason', sa.String(length=32), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('due_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_gc_candidates'))
    )
    with op.batch_alter_table('gc_candidates', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_gc_candidates_due_at'), ['due_at'], unique=False)
        # h/gc: a push forgets its manifest's rows, the collector drops each candidate's rows: by digest
        batch_op.create_index(batch_op.f('ix_gc_candidates_digest'), ['digest'], unique=False)

    op.create_table('job_runs',
    sa.Column('id', sa.Integer(), autoincrement=True, nullable=False),
    sa.Column('job', sa.String(length=64), nullable=False),
    sa.Column('node', sa.String(length=128), nullable=False),
    sa.Column('started_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('ended_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('outcome', sa.String(length=16), nullable=False),
    sa.Column('dry_run', sa.Boolean(), nullable=False),
    sa.Column('examined', sa.BigInteger(), nullable=False),
    sa.Column('removed', sa.BigInteger(), nullable=False),
    sa.Column('bytes_freed', sa.BigInteger(), nullable=False),
    sa.Column('detail', sa.JSON(), nullable=True),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_job_runs'))
    )
    with op.batch_alter_table('job_runs', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_job_runs_started_at'), ['started_at'], unique=False)

    op.create_table('job_state',
    sa.Column('name', sa.String(length=64), nullable=False),
    sa.Column('state', sa.JSON(), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('name', name=op.f('pk_job_state'))
    )
    op.create_table('deleted_tags',
    sa.Column('id', sa.Integer(), autoincrement=True, nullable=False),
    sa.Column('repository_id', sa.Integer(), nullable=False),
    sa.Column('name', sa.String(length=128).with_variant(sa.String(length=128, collation='C'), 'postgresql'), nullable=False),
    sa.Column('digest', sa.String(length=160), nullable=False),
    sa.Column('deleted_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('expires_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('run_id', sa.Integer(), nullable=True),
    sa.ForeignKeyConstraint(['repository_id'], ['repositories.id'], name=op.f('fk_deleted_tags_repository_id_repositories'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_deleted_tags')),
    sa.UniqueConstraint('repository_id', 'name', name='uq_deleted_tags_repository_name')
    )
    with op.batch_alter_table('deleted_tags', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_deleted_tags_expires_at'), ['expires_at'], unique=False)

    op.create_table('immutable_rules',
    sa.Column('id', sa.Integer(), autoincrement=True, nullable=False),
    sa.Column('project_id', sa.Integer(), nullable=False),
    sa.Column('repository_glob', sa.String(length=255), nullable=False),
    sa.Column('tag_glob', sa.String(length=255), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('created_by', sa.String(length=255), nullable=True),
    sa.ForeignKeyConstraint(['project_id'], ['projects.id'], name=op.f('fk_immutable_rules_project_id_projects'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_immutable_rules')),
    sa.UniqueConstraint('project_id', 'repository_glob', 'tag_glob', name='uq_immutable_rules_patterns')
    )
    op.create_table('retention_plans',
    sa.Column('id', sa.Integer(), autoincrement=True, nullable=False),
    sa.Column('project_id', sa.Integer(), nullable=False),
    sa.Column('fingerprint', sa.String(length=64), nullable=False),
    sa.Column('plan', sa.JSON(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('applied_at', sa.DateTime(timezone=True), nullable=True),
    sa.ForeignKeyConstraint(['project_id'], ['projects.id'], name=op.f('fk_retention_plans_project_id_projects'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_retention_plans'))
    )
    op.create_table('retention_policies',
    sa.Column('id', sa.Integer(), autoincrement=True, nullable=False),
    sa.Column('project_id', sa.Integer(), nullable=False),
    sa.Column('repository_glob', sa.String(length=255), nullable=False),
    sa.Column('keep_last', sa.Integer(), nullable=True),
    sa.Column('keep_days', sa.Integer(), nullable=True),
    sa.Column('keep_pulled_days', sa.Integer(), nullable=True),
    sa.Column('keep_tags', sa.String(length=512), nullable=True),
    sa.Column('keep_tags_invert', sa.Boolean(), nullable=False),
    sa.Column('untagged_days', sa.Integer(), nullable=True),
    sa.Column('schedule', sa.String(length=128), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('last_run_at', sa.DateTime(timezone=True), nullable=True),
    sa.ForeignKeyConstraint(['project_id'], ['projects.id'], name=op.f('fk_retention_policies_project_id_projects'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_retention_policies')),
    sa.UniqueConstraint('project_id', 'repository_glob', name='uq_retention_policies_project_glob')
    )
    op.create_table('blob_pins',
    sa.Column('upload_id', sa.String(length=64), nullable=False),
    sa.Column('digest', sa.String(length=160), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['upload_id'], ['uploads.id'], name=op.f('fk_blob_pins_upload_id_uploads'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('upload_id', name=op.f('pk_blob_pins'))
    )
    with op.batch_alter_table('blob_pins', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_blob_pins_digest'), ['digest'], unique=False)

    with op.batch_alter_table('blobs', schema=None) as batch_op:
        batch_op.add_column(sa.Column('verified_at', sa.DateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column('corrupt_at', sa.DateTime(timezone=True), nullable=True))

    with op.batch_alter_table('manifests', schema=None) as batch_op:
        batch_op.add_column(sa.Column('last_pulled_at', sa.DateTime(timezone=True), nullable=True))

    with op.batch_alter_table('projects', schema=None) as batch_op:
        batch_op.add_column(sa.Column('quota_bytes', sa.BigInteger(), nullable=True))
        batch_op.add_column(sa.Column('repository_pattern', sa.String(length=512), nullable=True))
        batch_op.add_column(sa.Column('tag_pattern', sa.String(length=512), nullable=True))



def downgrade() -> None:
    with op.batch_alter_table('projects', schema=None) as batch_op:
        batch_op.drop_column('tag_pattern')
        batch_op.drop_column('repository_pattern')
        batch_op.drop_column('quota_bytes')

    with op.batch_alter_table('manifests', schema=None) as batch_op:
        batch_op.drop_column('last_pulled_at')

    with op.batch_alter_table('blobs', schema=None) as batch_op:
        batch_op.drop_column('corrupt_at')
        batch_op.drop_column('verified_at')

    with op.batch_alter_table('blob_pins', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_blob_pins_digest'))

    op.drop_table('blob_pins')
    op.drop_table('retention_policies')
    op.drop_table('retention_plans')
    op.drop_table('immutable_rules')
    with op.batch_alter_table('deleted_tags', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_deleted_tags_expires_at'))

    op.drop_table('deleted_tags')
    op.drop_table('job_state')
    with op.batch_alter_table('job_runs', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_job_runs_started_at'))

    op.drop_table('job_runs')
    with op.batch_alter_table('gc_candidates', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_gc_candidates_digest'))
        batch_op.drop_index(batch_op.f('ix_gc_candidates_due_at'))

    op.drop_table('gc_candidates')
    op.drop_table('blob_deletions')
