"""pending frames partial index

Revision ID: b7d4e2a9c310
Revises: 6f3d8a1c2b95
Create Date: 2026-11-27 08:30:00.000000

"""
from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision = 'b7d4e2a9c310'
down_revision = '6f3d8a1c2b95'
branch_labels = None
depends_on = None

PENDING = sa.text("state = 'PENDING'")


def upgrade():
    with op.batch_alter_table('frames', schema=None) as batch_op:
        batch_op.drop_index('ix_frames_claim')
        batch_op.drop_index('ix_frames_state_job')
        batch_op.create_index('ix_frames_job_state', ['job_id', 'state'], unique=False)
        batch_op.create_index(
            'ix_frames_pending',
            ['job_id', 'priority', 'number'],
            unique=False,
            postgresql_where=PENDING,
            sqlite_where=PENDING,
        )


def downgrade():
    with op.batch_alter_table('frames', schema=None) as batch_op:
        batch_op.drop_index('ix_frames_pending', postgresql_where=PENDING, sqlite_where=PENDING)
        batch_op.drop_index('ix_frames_job_state')
        batch_op.create_index('ix_frames_state_job', ['state', 'job_id'], unique=False)
        batch_op.create_index('ix_frames_claim', ['job_id', 'state', 'priority', 'number'], unique=False)
