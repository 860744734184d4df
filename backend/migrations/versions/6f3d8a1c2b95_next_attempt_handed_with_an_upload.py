"""next attempt handed with an upload

Revision ID: 6f3d8a1c2b95
Revises: 4e7b2c9d1a60
Create Date: 2026-11-26 02:00:00.000000

"""
from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision = '6f3d8a1c2b95'
down_revision = '4e7b2c9d1a60'
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table('attempts', schema=None) as batch_op:
        batch_op.add_column(sa.Column('next_attempt_id', sa.Integer(), nullable=True))
        batch_op.create_foreign_key(
            batch_op.f('fk_attempts_next_attempt_id_attempts'), 'attempts', ['next_attempt_id'], ['id']
        )


def downgrade():
    with op.batch_alter_table('attempts', schema=None) as batch_op:
        batch_op.drop_constraint(batch_op.f('fk_attempts_next_attempt_id_attempts'), type_='foreignkey')
        batch_op.drop_column('next_attempt_id')
