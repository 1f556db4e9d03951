"""The bench report's PNG: how cost grows, one panel per growth benchmark.

:func:`growth_series` picks the points out of a run's document (pure, tested);
:func:`render_png` draws them with matplotlib: drain rate by tenant count, drain rate
and search p99 by memories stored, worker RSS and state size by events processed.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

__all__ = ["GrowthSeries", "growth_series", "render_png"]

Points = list[tuple[float, float]]


@dataclass(frozen=True)
class GrowthSeries:
    """(x, y) points of each line of the chart; a line without points is not drawn."""

    rate_by_tenants: Points = field(default_factory=list)
    rate_by_stored: Points = field(default_factory=list)
    p99_by_stored: Points = field(default_factory=list)
    p50_by_stored: Points = field(default_factory=list)
    rss_by_events: Points = field(default_factory=list)
    state_by_events: Points = field(default_factory=list)
    unflushed_by_events: Points = field(default_factory=list)


def _points(rows: object, x: str, y: str) -> Points:
    """(row[x], row[y]) of the rows that have both as numbers."""
    if not isinstance(rows, list):
        return []
    return [
        (float(r[x]), float(r[y]))
        for r in rows
        if isinstance(r, dict)
        and isinstance(r.get(x), int | float)
        and isinstance(r.get(y), int | float)
    ]


def growth_series(doc: dict[str, Any]) -> GrowthSeries:
    """The chart's points of a run's document. Pure."""
    steps, points = doc.get("collection_steps"), doc.get("endurance_points")
    return GrowthSeries(
        rate_by_tenants=_points(doc.get("tenants_runs"), "tenants", "events_per_s"),
        rate_by_stored=_points(steps, "stored", "events_per_s"),
        p99_by_stored=_points(steps, "stored", "search_p99_ms"),
        p50_by_stored=_points(steps, "stored", "search_p50_ms"),
        rss_by_events=_points(points, "events", "worker_rss_mb"),
        state_by_events=_points(points, "events", "state_mb"),
        unflushed_by_events=_points(points, "events", "state_unflushed_mb"),
    )


def _line(ax: Any, points: Points, label: str, style: str = "o-") -> None:
    if points:
        ax.plot([p[0] for p in points], [p[1] for p in points], style, label=label)


def _empty(ax: Any, what: str) -> None:
    ax.text(0.5, 0.5, f"{what}: not run", ha="center", va="center", transform=ax.transAxes)


def _tenants(ax: Any, s: GrowthSeries) -> None:
    ax.set_title("drain rate by tenants (shards)")
    if not s.rate_by_tenants:
        return _empty(ax, "tenants")
    _line(ax, s.rate_by_tenants, "events/s")
    ax.set_xscale("log")
    ax.set_xlabel("tenants")
    ax.set_ylabel("events per second")
    ax.set_ylim(bottom=0)


def _collection(ax: Any, s: GrowthSeries) -> None:
    ax.set_title("drain rate and search latency by memories stored")
    if not s.rate_by_stored:
        return _empty(ax, "collection")
    _line(ax, s.rate_by_stored, "drain events/s")
    ax.set_xlabel("memories stored")
    ax.set_ylabel("events per second")
    ax.set_ylim(bottom=0)
    right = ax.twinx()
    _line(right, s.p99_by_stored, "search p99", "s--C1")
    _line(right, s.p50_by_stored, "search p50", "^:C2")
    right.set_ylabel("search ms")
    right.set_ylim(bottom=0)
    handles = ax.get_legend_handles_labels()[0] + right.get_legend_handles_labels()[0]
    ax.legend(handles=handles, loc="lower left", fontsize=8)


def _endurance(ax: Any, s: GrowthSeries) -> None:
    ax.set_title("worker memory and state by events processed")
    if not s.rss_by_events:
        return _empty(ax, "endurance")
    _line(ax, s.rss_by_events, "worker RSS MiB")
    _line(ax, s.state_by_events, "state folder MiB", "s--")
    _line(ax, s.unflushed_by_events, "of it unflushed (memtable) MiB", "^:")
    ax.set_xlabel("events processed")
    ax.set_ylabel("MiB")
    ax.set_ylim(bottom=0)
    ax.legend(loc="best", fontsize=8)


def render_png(doc: dict[str, Any], path: Path) -> None:
    """The three growth panels of ``doc`` as a PNG at ``path``."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    series = growth_series(doc)
    fig, axes = plt.subplots(3, 1, figsize=(9, 11))
    _tenants(axes[0], series)
    _collection(axes[1], series)
    _endurance(axes[2], series)
    for ax in axes:
        ax.grid(alpha=0.3)
    fig.suptitle("How cost grows (loadgen bench)")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
