"""The monitoring report as one self-contained HTML page with its plots."""

from __future__ import annotations

import base64
import html
import io
import json

import numpy as np
from matplotlib.figure import Figure

from experiments.monitoring.drift import DriftReport


def report_html(report: DriftReport, *, title: str) -> str:
    """A page with the verdict, the per-feature drift against its limit, the label shares and
    the data-quality facts."""
    summary = report.summary()
    verdict = "DRIFT DETECTED" if report.drift_detected else "no drift"
    shown = {
        k: v
        for k, v in summary.items()
        if k not in ("label_shares", "reference_label_shares", "drifted_features")
    }
    rows = "".join(
        f"<tr><td>{html.escape(k)}</td><td>{html.escape(_shown(v))}</td></tr>"
        for k, v in _flattened(shown).items()
    )
    return f"""<!doctype html>
<html><head><meta charset="utf-8"><title>{html.escape(title)}</title>
<style>body{{font-family:sans-serif;max-width:1000px;margin:2em auto}}
td{{padding:2px 8px;border-bottom:1px solid #ddd}}</style></head><body>
<h1>{html.escape(title)}</h1>
<p><b>{verdict}</b>: {len(report.drifted_features)} of {len(report.feature_psi)} monitored
features are further from the training clips than any one training speaker is
({summary["drifted_feature_share"]:.0%}; the window drifts at
{report.share_limit:.0%}). Label shift {summary["label_shift"]:.3f} (total variation, 0-1);
mean confidence {summary["mean_confidence"]:.3f} against {summary["reference_mean_confidence"]:.3f}
on the champion's test clips.</p>
<img alt="drift per feature and label shares" src="data:image/png;base64,{_plots(report)}">
<h2>Summary</h2><table>{rows}</table>
<h2>Drifted features</h2><p>{html.escape(", ".join(report.drifted_features) or "none")}</p>
</body></html>"""


def _flattened(values: dict, prefix: str = "") -> dict:
    """Nested summaries (the data-quality facts) as one row per fact: ``quality.clipped_share``."""
    rows: dict = {}
    for key, value in values.items():
        if isinstance(value, dict):
            rows.update(_flattened(value, f"{prefix}{key}."))
        else:
            rows[f"{prefix}{key}"] = value
    return rows


def _shown(value: object) -> str:
    """A summary value as a reader wants it: floats to four significant digits."""
    if isinstance(value, float):
        return f"{value:.4g}"
    return json.dumps(value)


def _plots(report: DriftReport) -> str:
    figure = Figure(figsize=(10, 7.5), layout="constrained")
    drift, labels = figure.subplots(2, 1, gridspec_kw={"height_ratios": [1.6, 1]})
    names = list(report.feature_psi)
    ratio = [report.feature_psi[n] / report.feature_limits[n] for n in names]
    colours = ["#e53935" if r > 1 else "#90a4ae" for r in ratio]
    drift.bar(range(len(names)), ratio, color=colours)
    drift.axhline(1, color="#212121", linewidth=1)
    drift.set_xticks(range(len(names)), names, rotation=70, fontsize=7, ha="right")
    drift.set_ylabel("PSI / limit (1 = furthest training speaker)")
    drift.set_title("drift of each monitored feature (red: beyond every training speaker)")
    classes = sorted(set(report.label_shares) | set(report.reference_label_shares))
    x = np.arange(len(classes))
    labels.bar(x - 0.2, [report.reference_label_shares.get(c, 0) for c in classes], 0.4,
               label="champion on its test clips", color="#90a4ae")  # fmt: skip
    labels.bar(x + 0.2, [report.label_shares.get(c, 0) for c in classes], 0.4,
               label="answers in this window", color="#1e88e5")  # fmt: skip
    labels.set_xticks(x, classes)
    labels.set_ylabel("share of answers")
    labels.legend()
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=90)
    return base64.b64encode(buffer.getvalue()).decode()
