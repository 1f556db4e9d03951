"""Plain Weaviate imports of the same objects, per tenant count: one ``insert_many``
per tenant of a batch against one request for all of its tenants (and the client's
own batching, and its server-side batching).

    python -m loadgen.bench.tenant_requests --tenants 20 500 --objects 10000

Each import goes into a fresh collection of the project's schema on the local stack
(:mod:`loadgen.bench.imports`); prints a table and writes JSON with ``--json``.
Weaviate keeps ~20 open files per active tenant: 1,000 tenants pass the local
stack's open-files limit (20,000) and stall every Weaviate user. Ratios of one run
carry across machines, single rates do not.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from collections.abc import Sequence
from pathlib import Path

from loadgen.bench.baselines import import_objects
from loadgen.bench.imports import WAYS, import_seconds
from loadgen.synth import SynthConfig, synth_events
from streams.settings import Settings


def measure(
    settings: Settings,
    tenants: int,
    objects: int,
    batch: int,
    dim: int,
    ways: Sequence[str],
    tenants_first: bool,
) -> dict[str, float]:
    """objects/s of each way, for ``objects`` adds spread evenly over ``tenants``."""
    config = SynthConfig(
        count=objects,
        tenants=tenants,
        seed=tenants,
        update_ratio=0.0,
        delete_ratio=0.0,
        vector_dim=dim,
    )
    items = import_objects(list(synth_events(config)))
    return {
        way: len(items) / import_seconds(settings, items, batch, way, tenants_first=tenants_first)
        for way in ways
    }


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m loadgen.bench.tenant_requests")
    parser.add_argument("--tenants", type=int, nargs="+", default=[20, 1000])
    parser.add_argument("--objects", type=int, default=10_000)
    parser.add_argument("--batch", type=int, default=256)
    parser.add_argument("--dim", type=int, default=384)
    parser.add_argument("--ways", nargs="+", choices=WAYS, default=list(WAYS))
    parser.add_argument(
        "--tenants-first",
        action="store_true",
        help="create the tenants before the clock starts (else on first write, timed)",
    )
    parser.add_argument("--json", type=Path, help="also write the rates here")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING)
    settings = Settings()
    results = {
        n: measure(settings, n, args.objects, args.batch, args.dim, args.ways, args.tenants_first)
        for n in args.tenants
    }
    made = "created first" if args.tenants_first else "created on first write"
    out = [f"{args.objects} objects, batch {args.batch}, {args.dim} dims, tenants {made} (obj/s)"]
    out.append(f"{'tenants':>8} " + " ".join(f"{w:>13}" for w in args.ways) + "  one/per")
    for n, rates in results.items():
        both = "one_request" in rates and "per_tenant" in rates
        ratio = rates["one_request"] / rates["per_tenant"] if both else float("nan")
        out.append(f"{n:>8} " + " ".join(f"{rates[w]:>13,.0f}" for w in args.ways))
        out[-1] += f"  {ratio:.2f}"
    sys.stdout.write("\n".join(out) + "\n")
    if args.json:
        args.json.write_text(json.dumps({str(n): r for n, r in results.items()}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
