"""The `loadgen` command line."""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path

from loadgen import bench
from loadgen.fake_llm import ERROR_KINDS, LATENCY_DISTS, FakeConfig, serve
from loadgen.synth import SynthConfig, encode, synth_events

ROOT = Path(__file__).resolve().parents[1]


def _model_dir() -> Path:
    cache = Path(os.environ.get("AGENTMEM_CACHE_DIR", ROOT / ".cache"))
    return cache / "models" / "all-MiniLM-L6-v2-int8-v1"


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="loadgen", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    synth = sub.add_parser("synth", help="write synthetic memory events as JSONL")
    synth.add_argument("--count", type=int, default=int(os.environ.get("LOADGEN_COUNT", "1000")))
    synth.add_argument("--tenants", type=int, default=50)
    synth.add_argument("--seed", type=int, default=1)
    synth.add_argument("--duplicate-ratio", type=float, default=0.0)
    synth.add_argument("--invalid-ratio", type=float, default=0.0)
    synth.add_argument("--mode", choices=["fast", "intelligent"], default="fast")
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
    b = sub.add_parser("bench", help="run the benchmarks; writes bench-results.json")
    b.add_argument("--events", type=int, default=int(os.environ.get("LOADGEN_EVENTS", "20000")))
    b.add_argument("--out", type=Path, default=ROOT / "bench-results.json")
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

    if args.command == "synth":
        config = SynthConfig(
            count=args.count,
            tenants=args.tenants,
            seed=args.seed,
            duplicate_ratio=args.duplicate_ratio,
            invalid_ratio=args.invalid_ratio,
            mode=args.mode,
        )
        for doc in synth_events(config):
            sys.stdout.write(encode(doc)[1].decode() + "\n")
        return 0

    with tempfile.TemporaryDirectory(prefix="loadgen-bench-") as workdir:
        env = bench.bench_env_from_environment(Path(workdir))
        results = bench.fast_vs_embed(env, args.events, _model_dir())
    bench.write_results(results, args.out)
    print("| benchmark | value |")
    print("|---|---|")
    for key, value in results.items():
        print(f"| {key} | {value:.3f} |" if isinstance(value, float) else f"| {key} | {value} |")
    print(f"\nwritten to {args.out}")
    print(json.dumps(results))
    return 0


if __name__ == "__main__":
    sys.exit(main())
