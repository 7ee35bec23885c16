"""documents keep their static vector and page boundaries; predictions keep their evidence

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-02

Documents classified before this revision have no vector (they are left out of "more like this"
until classified again) and no page boundaries; their predictions have no evidence.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("documents", schema=None) as batch_op:
        batch_op.add_column(sa.Column("page_spans", sa.JSON(), nullable=True))
        batch_op.add_column(sa.Column("vector", sa.LargeBinary(), nullable=True))
    with op.batch_alter_table("predictions", schema=None) as batch_op:
        batch_op.add_column(sa.Column("evidence", sa.JSON(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("predictions", schema=None) as batch_op:
        batch_op.drop_column("evidence")
    with op.batch_alter_table("documents", schema=None) as batch_op:
        batch_op.drop_column("vector")
        batch_op.drop_column("page_spans")
