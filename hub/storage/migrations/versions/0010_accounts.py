"""accounts people open themselves: one-time codes (invitations, password resets), account
requests, the outbox of their emails, and the browser sessions given MQTT tokens

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-02 19:40:00
"""
import sqlalchemy as sa
from alembic import op

revision = '0010'
down_revision = '0009'
branch_labels = None
depends_on = None

BigId = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        'account_codes',
        sa.Column('id', BigId, nullable=False),
        sa.Column('kind', sa.String(length=10), nullable=False),
        sa.Column('code_hash', sa.String(length=64), nullable=False),
        sa.Column('email', sa.String(length=254), nullable=False),
        sa.Column('user_id', sa.Integer(), nullable=True),
        sa.Column('organization_id', sa.Integer(), nullable=True),
        sa.Column('role', sa.String(length=10), nullable=False),
        sa.Column('created_by', sa.Integer(), nullable=True),
        sa.Column('created_at', sa.DateTime(), nullable=False),
        sa.Column('expires_at', sa.DateTime(), nullable=False),
        sa.Column('used_at', sa.DateTime(), nullable=True),
        sa.ForeignKeyConstraint(['user_id'], ['users.id'], ondelete='CASCADE'),
        sa.ForeignKeyConstraint(['organization_id'], ['organizations.id'], ondelete='CASCADE'),
        sa.ForeignKeyConstraint(['created_by'], ['users.id'], ondelete='SET NULL'),
        sa.PrimaryKeyConstraint('id'),
        sa.UniqueConstraint('code_hash'),
    )
    op.create_index('ix_account_codes_email', 'account_codes', ['email'])
    op.create_table(
        'account_requests',
        sa.Column('id', BigId, nullable=False),
        sa.Column('email', sa.String(length=254), nullable=False),
        sa.Column('full_name', sa.String(length=200), nullable=False),
        sa.Column('organization', sa.String(length=100), nullable=False),
        sa.Column('message', sa.String(length=1000), nullable=False),
        sa.Column('created_at', sa.DateTime(), nullable=False),
        sa.Column('status', sa.String(length=10), nullable=False),
        sa.Column('decided_by', sa.Integer(), nullable=True),
        sa.Column('decided_at', sa.DateTime(), nullable=True),
        sa.ForeignKeyConstraint(['decided_by'], ['users.id'], ondelete='SET NULL'),
        sa.PrimaryKeyConstraint('id'),
    )
    op.create_index('ix_account_requests_email', 'account_requests', ['email'])
    op.create_table(
        'account_emails',
        sa.Column('id', BigId, nullable=False),
        sa.Column('created_at', sa.DateTime(), nullable=False),
        sa.Column('recipient', sa.String(length=254), nullable=False),
        sa.Column('subject', sa.String(length=200), nullable=False),
        sa.Column('body', sa.Text(), nullable=False),
        sa.Column('status', sa.String(length=10), nullable=False),
        sa.Column('attempts', sa.Integer(), nullable=False),
        sa.Column('claimed_at', sa.DateTime(), nullable=True),
        sa.Column('detail', sa.String(length=500), nullable=False),
        sa.PrimaryKeyConstraint('id'),
    )
    op.create_index('ix_account_emails_created_at', 'account_emails', ['created_at'])
    op.create_index('ix_account_emails_status', 'account_emails', ['status'])
    op.create_table(
        'token_sessions',
        sa.Column('nonce', sa.String(length=32), nullable=False),
        sa.Column('user_id', sa.Integer(), nullable=False),
        sa.Column('expires_at', sa.DateTime(), nullable=False),
        sa.ForeignKeyConstraint(['user_id'], ['users.id'], ondelete='CASCADE'),
        sa.PrimaryKeyConstraint('nonce'),
    )
    op.create_index('ix_token_sessions_user_id', 'token_sessions', ['user_id'])
    op.create_index('ix_token_sessions_expires_at', 'token_sessions', ['expires_at'])


def downgrade() -> None:
    op.drop_index('ix_token_sessions_expires_at', table_name='token_sessions')
    op.drop_index('ix_token_sessions_user_id', table_name='token_sessions')
    op.drop_table('token_sessions')
    op.drop_index('ix_account_emails_status', table_name='account_emails')
    op.drop_index('ix_account_emails_created_at', table_name='account_emails')
    op.drop_table('account_emails')
    op.drop_index('ix_account_requests_email', table_name='account_requests')
    op.drop_table('account_requests')
    op.drop_index('ix_account_codes_email', table_name='account_codes')
    op.drop_table('account_codes')
