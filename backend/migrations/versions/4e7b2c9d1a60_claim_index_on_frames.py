"""claim index on frames

Revision ID: 4e7b2c9d1a60
Revises: d3a91f5c7e20
Create Date: 2026-11-25 17:25:00.000000

"""
from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision = '4e7b2c9d1a60'
down_revision = 'd3a91f5c7e20'
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table('frames', schema=None) as batch_op:
        batch_op.create_index('ix_frames_claim', ['job_id', 'state', 'priority', 'number'], unique=False)


def downgrade():
    with op.batch_alter_table('frames', schema=None) as batch_op:
        batch_op.drop_index('ix_frames_claim')
