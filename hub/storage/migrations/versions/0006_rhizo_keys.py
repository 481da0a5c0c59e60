"""rhizo-server key hashes kept by run.py --import-rhizo, so imported keys keep working

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-01 15:00:00
"""
import sqlalchemy as sa
from alembic import op

revision = '0006'
down_revision = '0005'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        'rhizo_keys',
        sa.Column('prefix', sa.String(length=16), nullable=False),
        sa.Column('key_part', sa.String(length=8), nullable=False),
        sa.Column('key_hash', sa.String(length=128), nullable=False),
        sa.ForeignKeyConstraint(['prefix'], ['api_keys.prefix']),
        sa.PrimaryKeyConstraint('prefix'),
    )
    op.create_index('ix_rhizo_keys_key_part', 'rhizo_keys', ['key_part'])


def downgrade() -> None:
    op.drop_index('ix_rhizo_keys_key_part', table_name='rhizo_keys')
    op.drop_table('rhizo_keys')
