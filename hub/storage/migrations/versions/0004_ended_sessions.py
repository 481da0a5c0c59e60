"""ended browser sessions (log-out ends a session on the server, not only in the browser)

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-23 13:30:00
"""
import sqlalchemy as sa
from alembic import op

revision = '0004'
down_revision = '0003'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        'ended_sessions',
        sa.Column('nonce', sa.String(length=32), nullable=False),
        sa.Column('user_id', sa.Integer(), nullable=False),
        sa.Column('expires_at', sa.DateTime(), nullable=False),
        sa.ForeignKeyConstraint(['user_id'], ['users.id'], ondelete='CASCADE'),
        sa.PrimaryKeyConstraint('nonce'),
    )
    op.create_index('ix_ended_sessions_expires_at', 'ended_sessions', ['expires_at'])


def downgrade() -> None:
    op.drop_index('ix_ended_sessions_expires_at', table_name='ended_sessions')
    op.drop_table('ended_sessions')
