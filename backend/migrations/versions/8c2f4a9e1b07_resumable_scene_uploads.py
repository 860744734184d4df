"""resumable scene uploads

Revision ID: 8c2f4a9e1b07
Revises: 5b1e0c7d2f43
Create Date: 2026-11-25 16:45:00.000000

"""
from alembic import op
import sqlalchemy as sa

import backend.models


# revision identifiers, used by Alembic.
revision = '8c2f4a9e1b07'
down_revision = '5b1e0c7d2f43'
branch_labels = None
depends_on = None


def upgrade():
    op.create_table('scene_uploads',
    sa.Column('id', sa.String(length=32), nullable=False),
    sa.Column('owner_address', sa.String(length=42), nullable=False),
    sa.Column('size_bytes', sa.BigInteger(), nullable=False),
    sa.Column('received_bytes', sa.BigInteger(), nullable=False),
    sa.Column('created_at', backend.models.UtcDateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_scene_uploads'))
    )
    with op.batch_alter_table('scene_uploads', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_scene_uploads_owner_address'), ['owner_address'], unique=False)


def downgrade():
    with op.batch_alter_table('scene_uploads', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_scene_uploads_owner_address'))

    op.drop_table('scene_uploads')
