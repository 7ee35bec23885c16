"""predictions store their uncertainty three ways, so the review queue is ordered and paged in SQL

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-02
"""

from __future__ import annotations

import math

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None

COLUMNS = ("uncertainty_least_confidence", "uncertainty_margin", "uncertainty_entropy")
BATCH = 1000


def upgrade() -> None:
    with op.batch_alter_table("predictions", schema=None) as batch_op:
        for name in COLUMNS:
            batch_op.add_column(sa.Column(name, sa.Float(), nullable=False, server_default="0"))
    # Predictions made before this revision: computed from their stored probabilities, as
    # core.uncertainty does (written out here so this revision means the same thing forever).
    predictions = sa.table(
        "predictions",
        sa.column("id", sa.Integer),
        sa.column("scores", sa.JSON),
        *(sa.column(name, sa.Float) for name in COLUMNS),
    )
    connection = op.get_bind()
    last_id = 0
    while True:
        rows = connection.execute(
            sa.select(predictions.c.id, predictions.c.scores)
            .where(predictions.c.id > last_id)
            .order_by(predictions.c.id)
            .limit(BATCH)
        ).all()
        if not rows:
            break
        for prediction_id, scores in rows:
            connection.execute(
                predictions.update()
                .where(predictions.c.id == prediction_id)
                .values(dict(zip(COLUMNS, _uncertainties(scores or {}), strict=True)))
            )
        last_id = rows[-1][0]


def _uncertainties(scores: dict[str, float]) -> tuple[float, float, float]:
    ranked = sorted((float(p) for p in scores.values()), reverse=True) or [0.0]
    second = ranked[1] if len(ranked) > 1 else 0.0
    entropy = -sum(p * math.log(p) for p in ranked if p > 0)
    return 1.0 - ranked[0], 1.0 - (ranked[0] - second), entropy


def downgrade() -> None:
    with op.batch_alter_table("predictions", schema=None) as batch_op:
        for name in COLUMNS:
            batch_op.drop_column(name)
