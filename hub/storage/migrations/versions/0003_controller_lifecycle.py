"""controller life cycle: provisioning PINs, controller status and watchdog, outgoing messages, user phone

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-23 12:30:00
"""
import sqlalchemy as sa
from alembic import op

revision = '0003'
down_revision = '0002'
branch_labels = None
depends_on = None

BigId = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        'pins',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('pin', sa.String(length=16), nullable=False),
        sa.Column('code_hash', sa.String(length=64), nullable=False),
        sa.Column('created_at', sa.DateTime(), nullable=False),
        sa.Column('expires_at', sa.DateTime(), nullable=False),
        sa.Column('attempts', sa.Integer(), nullable=False),
        sa.Column('controller_id', sa.Integer(), nullable=True),
        sa.Column('attached_by', sa.Integer(), nullable=True),
        sa.Column('attached_at', sa.DateTime(), nullable=True),
        sa.Column('claimed_at', sa.DateTime(), nullable=True),
        sa.Column('key_prefix', sa.String(length=16), nullable=True),
        sa.ForeignKeyConstraint(['controller_id'], ['resources.id']),
        sa.ForeignKeyConstraint(['attached_by'], ['users.id']),
        sa.PrimaryKeyConstraint('id'),
        sa.UniqueConstraint('pin'),
    )
    op.create_index('ix_pins_expires_at', 'pins', ['expires_at'])
    op.create_table(
        'controller_status',
        sa.Column('controller_id', sa.Integer(), nullable=False),
        sa.Column('client_version', sa.String(length=40), nullable=True),
        sa.Column('last_connect_at', sa.DateTime(), nullable=True),
        sa.Column('last_message_at', sa.DateTime(), nullable=True),
        sa.Column('status', sa.Text(), nullable=True),
        sa.Column('status_at', sa.DateTime(), nullable=True),
        sa.Column('watchdog_minutes', sa.Integer(), nullable=True),
        sa.Column('watchdog_recipients', sa.Text(), nullable=False),
        sa.Column('watchdog_set_at', sa.DateTime(), nullable=True),
        sa.Column('watchdog_alerted_at', sa.DateTime(), nullable=True),
        sa.ForeignKeyConstraint(['controller_id'], ['resources.id']),
        sa.PrimaryKeyConstraint('controller_id'),
    )
    op.create_table(
        'outgoing_messages',
        sa.Column('id', BigId, nullable=False),
        sa.Column('created_at', sa.DateTime(), nullable=False),
        sa.Column('sender', sa.String(length=500), nullable=False),
        sa.Column('kind', sa.String(length=10), nullable=False),
        sa.Column('recipients', sa.Text(), nullable=False),
        sa.Column('subject', sa.String(length=200), nullable=False),
        sa.Column('status', sa.String(length=12), nullable=False),
        sa.Column('detail', sa.String(length=500), nullable=False),
        sa.PrimaryKeyConstraint('id'),
    )
    op.create_index('ix_outgoing_sender_at', 'outgoing_messages', ['sender', 'created_at'])
    with op.batch_alter_table('users') as batch:
        batch.add_column(sa.Column('phone', sa.String(length=32), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('users') as batch:
        batch.drop_column('phone')
    op.drop_index('ix_outgoing_sender_at', table_name='outgoing_messages')
    op.drop_table('outgoing_messages')
    op.drop_table('controller_status')
    op.drop_index('ix_pins_expires_at', table_name='pins')
    op.drop_table('pins')
