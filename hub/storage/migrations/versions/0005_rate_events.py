"""rate-limited events in the database (failed log-ins, PIN requests): one limit for every HTTP worker

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-23 14:00:00
"""
import sqlalchemy as sa
from alembic import op

revision = '0005'
down_revision = '0004'
branch_labels = None
depends_on = None

BigId = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        'rate_events',
        sa.Column('id', BigId, nullable=False),
        sa.Column('key', sa.String(length=64), nullable=False),
        sa.Column('at', sa.DateTime(), nullable=False),
        sa.PrimaryKeyConstraint('id'),
    )
    op.create_index('ix_rate_events_key_at', 'rate_events', ['key', 'at'])
    op.create_index('ix_rate_events_at', 'rate_events', ['at'])


def downgrade() -> None:
    op.drop_index('ix_rate_events_at', table_name='rate_events')
    op.drop_index('ix_rate_events_key_at', table_name='rate_events')
    op.drop_table('rate_events')
