"""The report as Markdown, a chart and files in an output folder."""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any


def _fmt(value: object, digits: int = 1) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:,.{digits}f}"
    return f"{value:,}" if isinstance(value, int) else str(value)


def md_table(headers: Sequence[str], rows: Iterable[Sequence[object]]) -> str:
    lines = ["| " + " | ".join(headers) + " |", "|" + "---|" * len(headers)]
    lines += ["| " + " | ".join(_fmt(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


def render_markdown(report: dict[str, Any], chart: str | None = "report.png") -> str:
    acks, thr, lat = report["acks"], report["throughput"], report["latency_ms"]
    window = report["window"]
    parts = [
        "# Load report",
        "",
        f"Generated {report['generated_at']}. Window: since {_fmt(window['since_ms'])} ms, "
        f"until {_fmt(window['until_ms'])} ms, "
        f"events of a replay file: {_fmt(window['events'])}.",
        "",
        "## Summary",
        "",
        md_table(
            ["acks", "distinct events", "seconds", "events/s", "peak/s", "dead letters"],
            [
                [
                    acks["count"],
                    acks["distinct_events"],
                    thr["seconds"],
                    thr["events_per_s"],
                    thr["peak_per_s"],
                    report["dead_letters"]["count"],
                ]
            ],
        ),
        "",
        "## End-to-end latency (produced → indexed, ms)",
        "",
        md_table(
            ["count", "p50", "p95", "p99", "max", "mean"],
            [[lat["count"], lat["p50"], lat["p95"], lat["p99"], lat["max"], lat["mean"]]],
        ),
        "",
        "## Outcomes",
        "",
        md_table(["outcome", "acks"], sorted(acks["by_outcome"].items())),
        "",
        "## Dead letters",
        "",
        md_table(["stage/reason", "count"], sorted(report["dead_letters"]["by_reason"].items()))
        if report["dead_letters"]["by_reason"]
        else "None.",
    ]
    parts += _metrics_section(report.get("metrics"))
    if chart:
        parts += ["", f"![throughput and latency per second]({chart})"]
    return "\n".join(parts) + "\n"


def _metrics_section(metrics: dict[str, Any] | None) -> list[str]:
    """The "Worker metrics" lines of the Markdown (none without metrics)."""
    if not metrics:
        return []
    parts = ["", "## Worker metrics", ""]
    if "error" in metrics:
        return [*parts, f"Not available: {metrics['error']}"]
    rows: list[list[object]] = [
        ["events in", metrics["events_in"]],
        ["batches", metrics["batches"]],
        ["mean batch size", metrics["mean_batch_size"]],
        [
            "worker end-to-end p50 ms (histogram, from occurred_at)",
            metrics["end_to_end_p50_ms_estimate"],
        ],
        [
            "worker end-to-end p99 ms (histogram, from occurred_at)",
            metrics["end_to_end_p99_ms_estimate"],
        ],
        ["consumer lag", metrics["consumer_lag"]],
    ]
    rows += [[f"applied {k}", v] for k, v in metrics["applied_by_type"].items()]
    rows += [[f"no-op {k}", v] for k, v in metrics["noop_by_reason"].items()]
    rows += [[f"mean {k} ms", v] for k, v in metrics["stage_mean_ms"].items()]
    rows += [[f"retries {k}", v] for k, v in metrics["retries_by_operation"].items()]
    parts.append(md_table(["metric", "value"], rows))
    if "source" in metrics:
        parts += ["", f"Source: {metrics['source']}"]
    return parts


def render_chart(report: dict[str, Any], path: Path) -> None:
    """Throughput (indexed and produced per second) and p50/p99 latency over time."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    thr, series = report["throughput"], report["latency_per_bucket_ms"]
    bucket_s = float(thr["bucket_s"])
    xs = [i * bucket_s for i in range(len(thr["indexed_per_bucket"]))]
    fig, (top, bottom) = plt.subplots(2, 1, figsize=(10, 6.5), sharex=True)
    top.plot(xs, [c / bucket_s for c in thr["produced_per_bucket"]], label="produced/s", lw=1)
    top.plot(xs, [c / bucket_s for c in thr["indexed_per_bucket"]], label="indexed/s", lw=1.5)
    top.set_ylabel("events per second")
    top.legend(loc="upper right")
    top.grid(alpha=0.3)
    for name in ("p50", "p99"):
        points = [(x, v) for x, v in zip(xs, series[name], strict=True) if v is not None]
        bottom.plot([p[0] for p in points], [p[1] for p in points], label=f"{name} latency", lw=1)
    bottom.set_ylabel("produced → indexed (ms)")
    bottom.set_xlabel("seconds since the first event")
    bottom.legend(loc="upper right")
    bottom.grid(alpha=0.3)
    lat = report["latency_ms"]
    fig.suptitle(
        f"{report['acks']['count']} acks, p50 {_fmt(lat['p50'], 0)} ms, "
        f"p99 {_fmt(lat['p99'], 0)} ms, max {_fmt(lat['max'], 0)} ms"
    )
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def write_outputs(report: dict[str, Any], out_dir: Path) -> dict[str, Path]:
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = {
        "json": out_dir / "report.json",
        "markdown": out_dir / "report.md",
        "chart": out_dir / "report.png",
    }
    paths["json"].write_text(json.dumps(report, indent=2) + "\n")
    paths["markdown"].write_text(render_markdown(report, paths["chart"].name))
    render_chart(report, paths["chart"])
    return paths
