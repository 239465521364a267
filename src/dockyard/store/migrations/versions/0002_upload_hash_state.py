"""upload hash state

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-28 06:47:24.515106
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = '0002'
down_revision = '0001'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('uploads', schema=None) as batch_op:
        batch_op.add_column(sa.Column('hash_offset', sa.BigInteger(), nullable=True))
        batch_op.add_column(sa.Column('hash_state', sa.LargeBinary(), nullable=True))



def downgrade() -> None:
    with op.batch_alter_table('uploads', schema=None) as batch_op:
        batch_op.drop_column('hash_state')
        batch_op.drop_column('hash_offset')

