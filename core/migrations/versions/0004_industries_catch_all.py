"""industries.catch_all: the industry that holds what no other claims ("other")

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-02
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("industries", schema=None) as batch_op:
        batch_op.add_column(sa.Column("catch_all", sa.Boolean(), nullable=False, server_default=sa.false()))
    # The shipped taxonomy's catch-all; a database made before this revision has it by that name.
    op.execute(sa.text("UPDATE industries SET catch_all = :yes WHERE name = 'other'").bindparams(yes=True))


def downgrade() -> None:
    with op.batch_alter_table("industries", schema=None) as batch_op:
        batch_op.drop_column("catch_all")
