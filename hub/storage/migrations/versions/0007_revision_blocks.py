"""compacted history: old sequence values packed into compressed blocks per sequence and hour

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-01 15:00:00
"""
import sqlalchemy as sa
from alembic import op

revision = '0007'
down_revision = '0006'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        'revision_blocks',
        sa.Column('resource_id', sa.Integer(), nullable=False),
        sa.Column('span_us', sa.BigInteger(), nullable=False),
        sa.Column('first_us', sa.BigInteger(), nullable=False),
        sa.Column('last_us', sa.BigInteger(), nullable=False),
        sa.Column('count', sa.Integer(), nullable=False),
        sa.Column('min', sa.Float(), nullable=True),
        sa.Column('max', sa.Float(), nullable=True),
        sa.Column('sum', sa.Float(), nullable=True),
        sa.Column('data', sa.LargeBinary(), nullable=False),
        sa.PrimaryKeyConstraint('resource_id', 'span_us'),
    )
    if op.get_bind().dialect.name == "postgresql":
        # already zstd-compressed: out of line as it is, no second (pglz) compression attempt
        op.execute("ALTER TABLE revision_blocks ALTER COLUMN data SET STORAGE EXTERNAL")


def downgrade() -> None:
    op.drop_table('revision_blocks')
