"""users.user_name (log-in by user name or email) and users.attributes;
organizations.timezone (all three as rhizo-server kept them)

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-02 19:20:00
"""
import sqlalchemy as sa
from alembic import op

revision = '0009'
down_revision = '0008'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('users') as batch:
        batch.add_column(sa.Column('user_name', sa.String(length=50), nullable=True))
        batch.add_column(sa.Column('attributes', sa.Text(), nullable=True))
        batch.create_unique_constraint('uq_users_user_name', ['user_name'])
    with op.batch_alter_table('organizations') as batch:
        batch.add_column(sa.Column('timezone', sa.String(length=64), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('organizations') as batch:
        batch.drop_column('timezone')
    with op.batch_alter_table('users') as batch:
        batch.drop_constraint('uq_users_user_name', type_='unique')
        batch.drop_column('attributes')
        batch.drop_column('user_name')
