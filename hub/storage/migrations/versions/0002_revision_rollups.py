"""revision rollups: per-minute and per-hour aggregates of numeric revisions

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-23 11:20:00
"""
import sqlalchemy as sa
from alembic import op

revision = '0002'
down_revision = '0001'
branch_labels = None
depends_on = None

WIDTHS_S = (60, 3600)


def upgrade() -> None:
    op.create_table(
        'revision_rollups',
        sa.Column('resource_id', sa.Integer(), nullable=False),
        sa.Column('width_s', sa.Integer(), nullable=False),
        sa.Column('bucket_us', sa.BigInteger(), nullable=False),
        sa.Column('count', sa.Integer(), nullable=False),
        sa.Column('min', sa.Float(), nullable=False),
        sa.Column('max', sa.Float(), nullable=False),
        sa.Column('sum', sa.Float(), nullable=False),
        sa.PrimaryKeyConstraint('resource_id', 'width_s', 'bucket_us'),
    )
    # Backfill from what is stored (timestamps are non-negative microseconds).
    for width in WIDTHS_S:
        us = width * 1_000_000
        op.execute(
            "INSERT INTO revision_rollups (resource_id, width_s, bucket_us, count, min, max, sum) "
            f"SELECT resource_id, {width}, (timestamp_us / {us}) * {us}, count(*), min(num), max(num), sum(num) "
            "FROM revisions WHERE num IS NOT NULL "
            f"GROUP BY resource_id, (timestamp_us / {us}) * {us}")


def downgrade() -> None:
    op.drop_table('revision_rollups')
