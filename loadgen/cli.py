"""The `loadgen` command line."""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import os
import signal
import sys
import time
from collections.abc import Sequence
from pathlib import Path

from pydantic import ValidationError

from loadgen.bench import options as bench_options
from loadgen.bench.config import BenchConfig
from loadgen.bench.render import render_markdown, write_results
from loadgen.bench.suite import run_all
from loadgen.fake_llm.server import ERROR_KINDS, LATENCY_DISTS, FakeConfig, serve
from loadgen.replay.records import Pace, read_records
from loadgen.replay.run import ReplayOptions, describe, replay_sync
from loadgen.report.build import build_report
from loadgen.report.metrics import query_prometheus, scrape_metrics
from loadgen.report.records import Window, parse_duration_s, parse_time_ms
from loadgen.report.render import write_outputs
from loadgen.report.topics import load_run
from loadgen.synth import SynthConfig, synth_events, to_line
from streams.settings import Settings

ROOT = Path(__file__).resolve().parents[1]


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="loadgen", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    synth = sub.add_parser("synth", help="write synthetic memory events as JSONL")
    _add_synth_arguments(synth)
    fake = sub.add_parser("fake-llm", help="serve the fake OpenAI-compatible LLM")
    fake.add_argument("--host", default="127.0.0.1")
    fake.add_argument(
        "--port", type=int, default=int(os.environ.get("LOADGEN_FAKE_LLM_PORT", "8700"))
    )
    fake.add_argument("--latency-ms", type=float, default=0.0)
    fake.add_argument("--latency-dist", choices=list(LATENCY_DISTS), default="fixed")
    fake.add_argument(
        "--latency-spread",
        type=float,
        default=0.0,
        help="uniform: +- ms around --latency-ms; lognormal: sigma",
    )
    fake.add_argument("--error-rate", type=float, default=0.0)
    fake.add_argument(
        "--errors", default=",".join(ERROR_KINDS), help="error kinds to draw from: 429,500,timeout"
    )
    fake.add_argument("--hang-s", type=float, default=120.0, help="how long a timeout hangs")
    fake.add_argument("--seed", type=int, default=1)
    _add_replay_arguments(sub.add_parser("replay", help="publish a JSONL file on a schedule"))
    _add_report_arguments(sub.add_parser("report", help="throughput, latency, dead letters"))
    bench_options.add_arguments(
        sub.add_parser("bench", help="run the benchmarks; writes bench-results.json, .md and .png")
    )
    quality = sub.add_parser(
        "quality",
        help="decision accuracy, fact recall and importance agreement of the configured LLM "
        "(AGENTMEM_LLM_*) on the labeled set",
    )
    quality.add_argument("--out", type=Path, help="also write the scores as JSON")
    quality.add_argument(
        "--only",
        default="decisions,facts,importance",
        help="the parts of the set to ask, comma-separated: decisions,facts,importance",
    )
    _add_retrieval_arguments(
        sub.add_parser(
            "retrieval",
            help="recall@k and hit@k of every search variant on the labeled conversational "
            "set, through the SDK; a private worker on the local stack",
        )
    )
    throughput = sub.add_parser(
        "llm-throughput",
        help="intelligent mode on the configured LLM (AGENTMEM_LLM_*) against fast mode, "
        "for several memories per prompt; private workers on the local stack",
    )
    throughput.add_argument("--events", type=int, default=40)
    throughput.add_argument("--batch-sizes", default="4,8,16", help="memories per prompt")
    throughput.add_argument("--out", type=Path, help="also write the rows as JSON")
    throughput.add_argument("--workdir", type=Path, default=Path("llm-throughput"))
    args = parser.parse_args(argv)

    if args.command == "fake-llm":
        try:
            fake_config = FakeConfig(
                latency_ms=args.latency_ms,
                latency_dist=args.latency_dist,
                latency_spread=args.latency_spread,
                error_rate=args.error_rate,
                errors=tuple(e.strip() for e in args.errors.split(",") if e.strip()),
                hang_s=args.hang_s,
                seed=args.seed,
            )
        except ValueError as exc:
            parser.error(str(exc))
        serve(args.host, args.port, fake_config)
        return 0

    try:
        if args.command == "synth":
            return _run_synth(args)
        if args.command == "replay":
            return _run_replay(args)
        if args.command == "report":
            return _run_report(args)
        if args.command == "quality":
            return _run_quality(args)
        if args.command == "retrieval":
            return _run_retrieval(args)
        if args.command == "llm-throughput":
            return _run_llm_throughput(args)
        return _run_bench(args)
    except (ValueError, ValidationError) as exc:
        parser.error(str(exc))


def _env(name: str) -> str | None:
    return os.environ.get(name) or None


def _add_synth_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--count", type=int, default=int(_env("LOADGEN_COUNT") or "1000"))
    p.add_argument("--tenants", type=int, default=50)
    p.add_argument("--agents", type=int, default=12, help="distinct agent ids")
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--update-ratio", type=float, default=0.15)
    p.add_argument("--delete-ratio", type=float, default=0.05)
    p.add_argument("--erase-ratio", type=float, default=0.01)
    p.add_argument("--duplicate-ratio", type=float, default=0.0, help="re-sent earlier events")
    p.add_argument("--invalid-ratio", type=float, default=0.0, help="events to dead-letter")
    p.add_argument("--mode", choices=["fast", "intelligent"], default="fast")
    p.add_argument("--tenant-skew", type=float, default=1.0, help="Zipf exponent; 0: uniform")
    p.add_argument(
        "--spacing-ms", type=float, default=20.0, help="mean gap between occurred_at times"
    )
    p.add_argument("--arrival", choices=["even", "poisson"], default="poisson")
    p.add_argument("--vectors", action="store_true", help="adds and updates carry a vector")
    p.add_argument("--out", type=Path, help="JSONL file (default: standard output)")


def _run_synth(args: argparse.Namespace) -> int:
    config = SynthConfig(
        count=args.count,
        tenants=args.tenants,
        agents=args.agents,
        seed=args.seed,
        update_ratio=args.update_ratio,
        delete_ratio=args.delete_ratio,
        erase_ratio=args.erase_ratio,
        duplicate_ratio=args.duplicate_ratio,
        invalid_ratio=args.invalid_ratio,
        mode=args.mode,
        tenant_skew=args.tenant_skew,
        spacing_ms=args.spacing_ms,
        arrival=args.arrival,
        vector_dim=384 if args.vectors else 0,
    )
    with (
        args.out.open("w", encoding="utf-8")
        if args.out
        else contextlib.nullcontext(sys.stdout) as out
    ):
        for doc in synth_events(config):
            out.write(to_line(doc) + "\n")
    return 0


def _add_replay_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("file", help="JSONL events (loadgen synth), '-' for standard input")
    p.add_argument(
        "--rate",
        type=float,
        default=float(_env("LOADGEN_RATE") or "0"),
        help="events per second; 0: as fast as possible (env LOADGEN_RATE)",
    )
    p.add_argument("--recorded", action="store_true", help="keep the occurred_at gaps")
    p.add_argument("--speedup", type=float, default=1.0, help="with --recorded: x times faster")
    p.add_argument(
        "--count",
        type=int,
        default=int(_env("LOADGEN_COUNT") or "0") or None,
        help="send at most N events (env LOADGEN_COUNT)",
    )
    p.add_argument(
        "--duration",
        type=float,
        default=float(_env("LOADGEN_DURATION") or "0") or None,
        help="send for at most S seconds (env LOADGEN_DURATION)",
    )
    p.add_argument("--max-inflight", type=int, default=10_000, help="unacknowledged sends")
    p.add_argument("--no-follow", action="store_true", help="do not follow memory.indexed")
    p.add_argument("--wait-s", type=float, default=120.0, help="wait this long for the acks")
    p.add_argument("--no-progress", action="store_true")
    p.add_argument("--json", action="store_true", help="print the result as JSON")


def _run_replay(args: argparse.Namespace) -> int:
    settings = Settings()
    pace = Pace(
        rate=0.0 if args.recorded else args.rate, recorded=args.recorded, speedup=args.speedup
    )
    options = ReplayOptions(
        pace=pace,
        count=args.count,
        duration_s=args.duration,
        max_inflight=args.max_inflight,
        follow=None if args.no_follow else "memory.indexed",
        wait_s=args.wait_s,
        progress=not args.no_progress,
    )
    records = read_records(args.file)
    result = replay_sync(settings, records, options)
    for line in describe(result):
        print(line, file=sys.stderr)
    if args.json:
        print(json.dumps(result.summary()))
    return 1 if result.errors else 0


def _add_report_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--events", type=Path, help="only the events of this replay file")
    p.add_argument("--since", help="produced at or after: ISO 8601 time or epoch ms")
    p.add_argument("--until", help="produced before: ISO 8601 time or epoch ms")
    p.add_argument("--last", help="the last 90s / 10m / 2h (instead of --since)")
    p.add_argument("--metrics-url", help="scrape this worker /metrics page")
    p.add_argument(
        "--prometheus-job", default="agentmem-worker", help="without --metrics-url: job to query"
    )
    p.add_argument("--no-metrics", action="store_true")
    p.add_argument("--bucket-s", type=float, default=1.0, help="throughput bucket width")
    p.add_argument("--out-dir", type=Path, default=ROOT / "reports")


def _run_report(args: argparse.Namespace) -> int:
    settings = Settings()
    since = parse_time_ms(args.since) if args.since else None
    if args.last:
        since = time.time() * 1000 - parse_duration_s(args.last) * 1000
    ids: frozenset[str] | None = None
    raws: frozenset[bytes] | None = None
    if args.events:
        records = read_records(args.events)
        ids = frozenset(r.event_id for r in records if r.event_id is not None)
        raws = frozenset(r.value for r in records)
    window = Window(since, parse_time_ms(args.until) if args.until else None, ids, raws)
    acks, dead = load_run(
        settings,
        settings.topic("memory.indexed"),
        settings.topic("memory.deadletter"),
        window,
    )
    metrics = None
    if args.metrics_url:
        metrics = scrape_metrics(args.metrics_url)
    elif not args.no_metrics:
        metrics = query_prometheus(settings.prometheus_url, args.prometheus_job)
    doc = build_report(acks, dead, window, metrics, args.bucket_s)
    paths = write_outputs(doc, args.out_dir)
    lat = doc["latency_ms"]
    print(
        f"{doc['acks']['count']} acks, {doc['dead_letters']['count']} dead letters; "
        f"p50 {lat['p50']} ms, p95 {lat['p95']} ms, p99 {lat['p99']} ms, max {lat['max']} ms"
    )
    for what, path in paths.items():
        print(f"  {what}: {path}")
    return 0


def _exit_on_sigterm(signum: int, frame: object) -> None:
    """SIGTERM as an exit, so that private workers are stopped and cleaned up."""
    sys.exit(128 + signum)


def _run_bench(args: argparse.Namespace) -> int:
    signal.signal(signal.SIGTERM, _exit_on_sigterm)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    for noisy in ("httpx", "httpcore", "aiokafka", "weaviate"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    settings = Settings()
    workdir = settings.stack_dir / "logs" / "bench" / time.strftime("%Y%m%d-%H%M%S")
    progress = sys.stderr.isatty() if args.progress is None else args.progress
    config = bench_options.config_of(args, workdir, progress)
    out = args.out or ROOT / "bench-results.json"
    md_out, png_out = args.md_out or out.with_suffix(".md"), args.png_out or out.with_suffix(".png")
    started = time.monotonic()
    run = run_all(settings, config)
    doc = run.document(config)
    doc["total_seconds"] = time.monotonic() - started
    write_results(doc, out, md_out, png_out)
    print(render_markdown(doc))
    print(f"written to {out}, {md_out} and {png_out} in {doc['total_seconds']:.0f}s")
    print(f"worker logs: {workdir}")
    return 1 if run.failed else 0


def _run_quality(args: argparse.Namespace) -> int:
    import asyncio

    from loadgen.quality.render import as_json, render_markdown
    from loadgen.quality.run import run_quality

    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    parts = tuple(p.strip() for p in args.only.split(",") if p.strip())
    run = asyncio.run(run_quality(Settings(), parts=parts))
    sys.stdout.write(render_markdown(run))
    if args.out is not None:
        args.out.write_text(json.dumps(as_json(run), indent=2) + "\n")
    return 0


def _add_retrieval_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--out", type=Path, help="also write the report as JSON")
    p.add_argument("--variants", help="comma-separated parts of variant names (default: all)")
    p.add_argument("--questions", type=int, help="a slice: this many questions ...")
    p.add_argument("--turns", type=int, default=60, help="... among this many turns")
    p.add_argument("--workdir", type=Path, default=Path("retrieval-run"))


def _run_retrieval(args: argparse.Namespace) -> int:
    from loadgen.retrieval import render
    from loadgen.retrieval.dataset import load, sample
    from loadgen.retrieval.run import RetrievalOptions, run_retrieval
    from loadgen.retrieval.variants import all_variants, choose

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    logging.getLogger("httpx").setLevel(logging.WARNING)
    data = load()
    if args.questions is not None:
        if args.questions < 1 or args.turns < 1:
            raise ValueError("--questions and --turns must be at least 1")
        data = sample(data, questions=args.questions, turns=args.turns)
    options = RetrievalOptions(choose(all_variants(), args.variants), args.workdir)
    doc = run_retrieval(Settings(), data, options)
    sys.stdout.write(render.markdown(doc))
    if args.out is not None:
        args.out.write_text(json.dumps(doc, indent=2) + "\n")
    return 0


def _run_llm_throughput(args: argparse.Namespace) -> int:
    from loadgen.bench import real_llm

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    settings = Settings()
    config = BenchConfig(
        intelligent_events=args.events, workdir=args.workdir, intelligent_stall_s=600.0
    )
    args.workdir.mkdir(parents=True, exist_ok=True)
    sizes = [int(s) for s in args.batch_sizes.split(",") if s.strip()]
    rows = real_llm.run(settings, config, sizes)
    sys.stdout.write(real_llm.render(rows, settings.llm_model))
    if args.out is not None:
        args.out.write_text(json.dumps(rows, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
