"""spot checks

Revision ID: d3a91f5c7e20
Revises: 8c2f4a9e1b07
Create Date: 2026-11-25 17:00:00.000000

"""
from alembic import op
import sqlalchemy as sa

import backend.models


# revision identifiers, used by Alembic.
revision = 'd3a91f5c7e20'
down_revision = '8c2f4a9e1b07'
branch_labels = None
depends_on = None


def upgrade():
    op.create_table('spot_checks',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('frame_id', sa.Integer(), nullable=False),
    sa.Column('checked_attempt_id', sa.Integer(), nullable=False),
    sa.Column('state', sa.Enum('PENDING', 'ASSIGNED', 'PASSED', 'FAILED', 'SKIPPED', name='spotcheckstate', native_enum=False, length=32), nullable=False),
    sa.Column('crops', sa.JSON(), nullable=False),
    sa.Column('crop_sha256s', sa.JSON(), nullable=False),
    sa.Column('checker_node_id', sa.String(length=32), nullable=True),
    sa.Column('checker_attempt_id', sa.Integer(), nullable=True),
    sa.Column('result', sa.Text(), nullable=True),
    sa.Column('confirms_spot_check_id', sa.Integer(), nullable=True),
    sa.Column('created_at', backend.models.UtcDateTime(timezone=True), nullable=False),
    sa.Column('ended_at', backend.models.UtcDateTime(timezone=True), nullable=True),
    sa.ForeignKeyConstraint(['checked_attempt_id'], ['attempts.id'], name=op.f('fk_spot_checks_checked_attempt_id_attempts')),
    sa.ForeignKeyConstraint(['checker_attempt_id'], ['attempts.id'], name=op.f('fk_spot_checks_checker_attempt_id_attempts')),
    sa.ForeignKeyConstraint(['checker_node_id'], ['nodes.id'], name=op.f('fk_spot_checks_checker_node_id_nodes')),
    sa.ForeignKeyConstraint(['confirms_spot_check_id'], ['spot_checks.id'], name=op.f('fk_spot_checks_confirms_spot_check_id_spot_checks')),
    sa.ForeignKeyConstraint(['frame_id'], ['frames.id'], name=op.f('fk_spot_checks_frame_id_frames')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_spot_checks'))
    )
    with op.batch_alter_table('spot_checks', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_spot_checks_checked_attempt_id'), ['checked_attempt_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_spot_checks_checker_attempt_id'), ['checker_attempt_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_spot_checks_frame_id'), ['frame_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_spot_checks_state'), ['state'], unique=False)


def downgrade():
    with op.batch_alter_table('spot_checks', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_spot_checks_state'))
        batch_op.drop_index(batch_op.f('ix_spot_checks_frame_id'))
        batch_op.drop_index(batch_op.f('ix_spot_checks_checker_attempt_id'))
        batch_op.drop_index(batch_op.f('ix_spot_checks_checked_attempt_id'))

    op.drop_table('spot_checks')
