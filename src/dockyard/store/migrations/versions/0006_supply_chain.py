"""supply chain: scans, vulnerability database, allow-lists, trusted keys, admission rules

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-06 23:38:59.016188
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = '0006'
down_revision = '0005'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('scans',
    sa.Column('digest', sa.String(length=160), nullable=False),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('queued_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('started_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('finished_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('claimed_by', sa.String(length=128), nullable=True),
    sa.Column('claimed_until', sa.DateTime(timezone=True), nullable=True),
    sa.Column('attempts', sa.Integer(), nullable=False),
    sa.Column('scanner_version', sa.String(length=32), nullable=True),
    sa.Column('inventory', sa.JSON(), nullable=True),
    sa.Column('findings', sa.JSON(), nullable=True),
    sa.Column('vulnerabilities', sa.JSON(), nullable=True),
    sa.Column('vulndb_revision', sa.Integer(), nullable=True),
    sa.Column('error', sa.String(length=1000), nullable=True),
    sa.PrimaryKeyConstraint('digest', name=op.f('pk_scans'))
    )
    with op.batch_alter_table('scans', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_scans_status'), ['status'], unique=False)

    op.create_table('vuln_advisories',
    sa.Column('id', sa.String(length=128), nullable=False),
    sa.Column('modified', sa.DateTime(timezone=True), nullable=True),
    sa.Column('aliases', sa.JSON(), nullable=False),
    sa.Column('summary', sa.Text(), nullable=True),
    sa.Column('severity', sa.String(length=16), nullable=False),
    sa.Column('score', sa.Float(), nullable=True),
    sa.Column('vector', sa.String(length=255), nullable=True),
    sa.Column('withdrawn', sa.Boolean(), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_vuln_advisories'))
    )
    op.create_table('vulndb_revisions',
    sa.Column('id', sa.Integer(), autoincrement=True, nullable=False),
    sa.Column('imported_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('source', sa.String(length=255), nullable=False),
    sa.Column('added', sa.Integer(), nullable=False),
    sa.Column('updated', sa.Integer(), nullable=False),
    sa.Column('unchanged', sa.Integer(), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_vulndb_revisions'))
    )
    op.create_table('admission_rules',
    sa.Column('id', sa.Integer(), autoincrement=True, nullable=False),
    sa.Column('project_id', sa.Integer(), nullable=False),
    sa.Column('stage', sa.String(length=8), nullable=False),
    sa.Column('check', sa.String(length=16), nullable=False),
    sa.Column('mode', sa.String(length=8), nullable=False),
    sa.Column('severity', sa.String(length=16), nullable=True),
    sa.Column('labels', sa.JSON(), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['project_id'], ['projects.id'], name=op.f('fk_admission_rules_project_id_projects'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_admission_rules')),
    sa.UniqueConstraint('project_id', 'stage', 'check', name='uq_admission_rules_project_stage_check')
    )
    op.create_table('trusted_keys',
    sa.Column('id', sa.Integer(), autoincrement=True, nullable=False),
    sa.Column('project_id', sa.Integer(), nullable=False),
    sa.Column('name', sa.String(length=64), nullable=False),
    sa.Column('public_key', sa.String(length=4096), nullable=False),
    sa.Column('fingerprint', sa.String(length=64), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('created_by', sa.String(length=255), nullable=True),
    sa.ForeignKeyConstraint(['project_id'], ['projects.id'], name=op.f('fk_trusted_keys_project_id_projects'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_trusted_keys')),
    sa.UniqueConstraint('project_id', 'name', name='uq_trusted_keys_project_name')
    )
    op.create_table('vuln_affected',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=True, nullable=False),
    sa.Column('advisory_id', sa.String(length=128), nullable=False),
    sa.Column('ecosystem', sa.String(length=64), nullable=False),
    sa.Column('package', sa.String(length=255), nullable=False),
    sa.Column('ranges', sa.JSON(), nullable=False),
    sa.Column('versions', sa.JSON(), nullable=False),
    sa.Column('severity', sa.String(length=16), nullable=True),
    sa.ForeignKeyConstraint(['advisory_id'], ['vuln_advisories.id'], name=op.f('fk_vuln_affected_advisory_id_vuln_advisories'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_vuln_affected'))
    )
    with op.batch_alter_table('vuln_affected', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_vuln_affected_advisory_id'), ['advisory_id'], unique=False)
        batch_op.create_index('ix_vuln_affected_ecosystem_package', ['ecosystem', 'package'], unique=False)

    op.create_table('vuln_allowlist',
    sa.Column('id', sa.Integer(), autoincrement=True, nullable=False),
    sa.Column('project_id', sa.Integer(), nullable=False),
    sa.Column('vulnerability', sa.String(length=128), nullable=False),
    sa.Column('reason', sa.String(length=500), nullable=False),
    sa.Column('expires_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('created_by', sa.String(length=255), nullable=True),
    sa.ForeignKeyConstraint(['project_id'], ['projects.id'], name=op.f('fk_vuln_allowlist_project_id_projects'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_vuln_allowlist')),
    sa.UniqueConstraint('project_id', 'vulnerability', name='uq_vuln_allowlist_project_vulnerability')
    )


def downgrade() -> None:
    op.drop_table('vuln_allowlist')
    with op.batch_alter_table('vuln_affected', schema=None) as batch_op:
        batch_op.drop_index('ix_vuln_affected_ecosystem_package')
        batch_op.drop_index(batch_op.f('ix_vuln_affected_advisory_id'))

    op.drop_table('vuln_affected')
    op.drop_table('trusted_keys')
    op.drop_table('admission_rules')
    op.drop_table('vulndb_revisions')
    op.drop_table('vuln_advisories')
    with op.batch_alter_table('scans', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_scans_status'))

    op.drop_table('scans')
