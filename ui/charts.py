"""Altair charts for the console: plain data (as the use cases return it) in, a chart out.

Pure functions: no Streamlit, no database. Each takes the piece of an evaluation report (see
``core.evaluation.evaluation_report``) or of the version list it draws, so the pages stay thin and
the charts can be built and checked without running the console.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import altair as alt
import pandas as pd

from core.services.models import VersionView

METRICS = ("precision", "recall", "f1")
UNIT = alt.Scale(domain=[0.0, 1.0])


def per_class_bars(per_class: Mapping[str, Mapping[str, float]]) -> alt.Chart:
    """Grouped bars of precision, recall and F1 for each industry (``report["per_class"]``)."""
    rows = [
        {
            "industry": label,
            "metric": metric,
            "value": float(scores.get(metric, 0.0)),
            "support": scores.get("support", 0),
        }
        for label, scores in per_class.items()
        for metric in METRICS
    ]
    frame = pd.DataFrame(rows, columns=["industry", "metric", "value", "support"])
    return (
        alt.Chart(frame, title="Precision, recall and F1 by industry")
        .mark_bar()
        .encode(
            x=alt.X("industry:N", title=None, sort=list(per_class)),
            xOffset=alt.XOffset("metric:N", sort=list(METRICS)),
            y=alt.Y("value:Q", scale=UNIT, title=None),
            color=alt.Color("metric:N", sort=list(METRICS), title=None),
            tooltip=["industry", "metric", alt.Tooltip("value:Q", format=".3f"), "support"],
        )
    )


def confusion_heatmap(confusion: Mapping[str, Any]) -> alt.LayerChart:
    """The confusion matrix (``report["confusion"]``): rows are the truth, columns the prediction.

    Colour is the share of the true industry's documents (so small classes are as readable as
    large ones); the number in each cell is the count.
    """
    labels = list(confusion.get("labels", []))
    matrix = confusion.get("matrix", [])
    rows = []
    for truth, counts in zip(labels, matrix, strict=False):
        total = sum(counts) or 1
        for predicted, count in zip(labels, counts, strict=False):
            rows.append({"truth": truth, "predicted": predicted, "count": int(count), "share": count / total})
    frame = pd.DataFrame(rows, columns=["truth", "predicted", "count", "share"])
    base = alt.Chart(frame, title="Confusion matrix (rows: truth)").encode(
        x=alt.X("predicted:N", sort=labels, title="predicted"),
        y=alt.Y("truth:N", sort=labels, title="truth"),
    )
    cells = base.mark_rect().encode(
        color=alt.Color("share:Q", scale=alt.Scale(domain=[0, 1], scheme="blues"), title="share of truth"),
        tooltip=["truth", "predicted", "count", alt.Tooltip("share:Q", format=".0%")],
    )
    numbers = (
        base.mark_text()
        .encode(
            text=alt.Text("count:Q"),
            color=alt.condition(alt.datum.share > 0.5, alt.value("white"), alt.value("black")),
        )
        .transform_filter(alt.datum.count > 0)
    )
    return alt.layer(cells, numbers)


def reliability_diagram(reliability: Sequence[Mapping[str, float]]) -> alt.LayerChart:
    """Accuracy against mean confidence per confidence bin (``report["reliability"]``).

    Points on the diagonal are perfectly calibrated; below it the model is over-confident. Point
    size is the number of documents in the bin.
    """
    frame = pd.DataFrame(list(reliability), columns=["lower", "upper", "confidence", "accuracy", "count"])
    diagonal = (
        alt.Chart(pd.DataFrame({"x": [0.0, 1.0], "y": [0.0, 1.0]}))
        .mark_line(strokeDash=[4, 4], color="gray")
        .encode(x="x:Q", y="y:Q")
    )
    curve = (
        alt.Chart(frame)
        .mark_line(point=True)
        .encode(
            x=alt.X("confidence:Q", scale=UNIT, title="mean confidence"),
            y=alt.Y("accuracy:Q", scale=UNIT, title="accuracy"),
            tooltip=[
                alt.Tooltip("lower:Q", format=".1f"),
                alt.Tooltip("upper:Q", format=".1f"),
                alt.Tooltip("confidence:Q", format=".3f"),
                alt.Tooltip("accuracy:Q", format=".3f"),
                "count",
            ],
        )
    )
    sized = curve.mark_circle().encode(size=alt.Size("count:Q", title="documents"))
    return alt.layer(diagonal, curve, sized).properties(title="Reliability (calibration)")


def coverage_curve(points: Sequence[Mapping[str, float]]) -> alt.Chart:
    """Accuracy on the most confident share of documents (``report["accuracy_at_coverage"]``)."""
    frame = pd.DataFrame(list(points), columns=["coverage", "accuracy", "threshold"])
    return (
        alt.Chart(frame, title="Accuracy at coverage")
        .mark_line(point=True)
        .encode(
            x=alt.X("coverage:Q", scale=UNIT, axis=alt.Axis(format="%"), title="documents answered"),
            y=alt.Y("accuracy:Q", scale=alt.Scale(zero=False), title="accuracy"),
            tooltip=[
                alt.Tooltip("coverage:Q", format=".0%"),
                alt.Tooltip("accuracy:Q", format=".3f"),
                alt.Tooltip("threshold:Q", format=".3f", title="confidence ≥"),
            ],
        )
    )


def learning_curve(versions: Sequence[VersionView]) -> alt.LayerChart:
    """Holdout macro-F1 of every version over time (``list_versions``), coloured by status."""
    rows = [
        {
            "version": version.id,
            "trained": pd.Timestamp(version.created_at),
            "macro_f1": version.metrics.get("macro_f1"),
            "status": version.status,
            "kind": version.kind,
        }
        for version in versions
    ]
    frame = pd.DataFrame(rows, columns=["version", "trained", "macro_f1", "status", "kind"])
    frame = frame.dropna(subset=["macro_f1"]).sort_values("version")
    base = alt.Chart(frame, title="Learning curve: holdout macro-F1 by version").encode(
        x=alt.X("trained:T", title="trained at"),
        y=alt.Y("macro_f1:Q", scale=alt.Scale(zero=False), title="macro-F1"),
    )
    line = base.mark_line(color="lightgray").encode(order="version:Q")
    points = base.mark_point(filled=True, size=80).encode(
        color=alt.Color(
            "status:N",
            title="status",
            scale=alt.Scale(
                domain=["active", "candidate", "retired"], range=["#2ca02c", "#ff7f0e", "#7f7f7f"]
            ),
        ),
        shape=alt.Shape("kind:N", title="kind"),
        tooltip=["version", "kind", "status", alt.Tooltip("macro_f1:Q", format=".3f"), "trained:T"],
    )
    names = base.mark_text(dy=-12, fontSize=10).encode(text=alt.Text("name:N"))
    return alt.layer(line, points, names).transform_calculate(name="'v' + datum.version")
