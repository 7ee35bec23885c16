"""batches keep the files a multi-file upload refused

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-05
"""

from __future__ import annotations

import sqlalchemy as sa
import sqlmodel
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "refused_uploads",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("batch_id", sqlmodel.sql.sqltypes.AutoString(length=32), nullable=False),
        sa.Column("filename", sqlmodel.sql.sqltypes.AutoString(length=255), nullable=False),
        sa.Column("code", sqlmodel.sql.sqltypes.AutoString(length=40), nullable=False),
        sa.Column("message", sa.Text(), nullable=False),
        sa.Column("created_at", sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
    )
    op.create_index("ix_refused_uploads_batch_id", "refused_uploads", ["batch_id"])


def downgrade() -> None:
    op.drop_index("ix_refused_uploads_batch_id", table_name="refused_uploads")
    op.drop_table("refused_uploads")
