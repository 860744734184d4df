"""accounts: api tokens, scene and job owners, node sandbox, benchmark and slots

Revision ID: 5b1e0c7d2f43
Revises: a4724da491f0
Create Date: 2026-11-25 16:20:00.000000

"""
from alembic import op
import sqlalchemy as sa

import backend.models


# revision identifiers, used by Alembic.
revision = '5b1e0c7d2f43'
down_revision = 'a4724da491f0'
branch_labels = None
depends_on = None


def upgrade():
    op.create_table('api_tokens',
    sa.Column('id', sa.String(length=32), nullable=False),
    sa.Column('owner_address', sa.String(length=42), nullable=False),
    sa.Column('token_sha256', sa.String(length=64), nullable=False),
    sa.Column('kind', sa.Enum('SESSION', 'API', name='tokenkind', native_enum=False, length=32), nullable=False),
    sa.Column('name', sa.String(length=128), nullable=False),
    sa.Column('created_at', backend.models.UtcDateTime(timezone=True), nullable=False),
    sa.Column('expires_at', backend.models.UtcDateTime(timezone=True), nullable=True),
    sa.Column('revoked_at', backend.models.UtcDateTime(timezone=True), nullable=True),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_api_tokens')),
    sa.UniqueConstraint('token_sha256', name=op.f('uq_api_tokens_token_sha256'))
    )
    with op.batch_alter_table('api_tokens', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_api_tokens_owner_address'), ['owner_address'], unique=False)

    op.create_table('scene_owners',
    sa.Column('scene_sha256', sa.String(length=64), nullable=False),
    sa.Column('owner_address', sa.String(length=42), nullable=False),
    sa.Column('uploaded_at', backend.models.UtcDateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['scene_sha256'], ['scene_files.sha256'], name=op.f('fk_scene_owners_scene_sha256_scene_files')),
    sa.PrimaryKeyConstraint('scene_sha256', 'owner_address', name=op.f('pk_scene_owners'))
    )

    with op.batch_alter_table('jobs', schema=None) as batch_op:
        batch_op.add_column(sa.Column('owner_address', sa.String(length=42), nullable=True))
        batch_op.create_index(batch_op.f('ix_jobs_owner_address'), ['owner_address'], unique=False)

    with op.batch_alter_table('nodes', schema=None) as batch_op:
        batch_op.add_column(sa.Column('owner_address', sa.String(length=42), nullable=True))
        batch_op.add_column(sa.Column('sandboxed', sa.Boolean(), nullable=False, server_default=sa.false()))
        batch_op.add_column(sa.Column('benchmark_ms', sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column('slots', sa.JSON(), nullable=False, server_default=sa.text("'[]'")))
        batch_op.create_index(batch_op.f('ix_nodes_owner_address'), ['owner_address'], unique=False)


def downgrade():
    with op.batch_alter_table('nodes', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_nodes_owner_address'))
        batch_op.drop_column('slots')
        batch_op.drop_column('benchmark_ms')
        batch_op.drop_column('sandboxed')
        batch_op.drop_column('owner_address')

    with op.batch_alter_table('jobs', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_jobs_owner_address'))
        batch_op.drop_column('owner_address')

    op.drop_table('scene_owners')
    with op.batch_alter_table('api_tokens', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_api_tokens_owner_address'))

    op.drop_table('api_tokens')
