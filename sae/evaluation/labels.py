"""How the run metrics are named for people: the one mapping from a metric key to its label.

The keys are those of ``sae.evaluation.metrics.evaluate_run`` and of the run store's metric columns
("reconstruction", "rho_hat_mean", "dead_units", "probe_accuracy", "total"). A :class:`MetricLabel` gives the
short name (a metric card, a chart title, a table column), a detail (what exactly is measured) and the format
of a value. The figures (``sae.viz.run_figures``), the run and sweep pages and the Train page take their words
from here. No Streamlit, no Plotly.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class MetricLabel:
    """name: "Reconstruction error"; detail: "½‖x̂−x‖², all data"; fmt: a format spec for a value (".3g")."""

    name: str
    detail: str
    fmt: str

    @property
    def title(self) -> str:
        """The name with its detail: "Reconstruction error (½‖x̂−x‖², all data)"."""
        return f"{self.name} ({self.detail})" if self.detail else self.name

    def format(self, value: float) -> str:
        """A value as this metric shows it (e.g. 0.953 -> "95.3%" for the probe accuracy)."""
        return format(value, self.fmt)


METRIC_LABELS: dict[str, MetricLabel] = {
    "reconstruction": MetricLabel("Reconstruction error", "½‖x̂−x‖², all data", ".3g"),
    "rho_hat_mean": MetricLabel("Mean ρ̂", "all data", ".3g"),
    "dead_units": MetricLabel("Dead units", "ρ̂ⱼ < ρ/10, never above 0.1", ".0f"),
    "probe_accuracy": MetricLabel("Probe accuracy", "linear, on the codes", ".1%"),
    "total": MetricLabel("Total loss J", "last step", ".3g"),
}


def metric_label(key: str) -> MetricLabel:
    """The label of metric ``key``; an unknown key is its own name (no detail, ".3g")."""
    return METRIC_LABELS.get(key) or MetricLabel(key, "", ".3g")


__all__ = ["MetricLabel", "METRIC_LABELS", "metric_label"]
