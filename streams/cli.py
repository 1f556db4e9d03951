"""The `agentmem` command line: the one launcher of every AgentMem process (stack, worker,
API, requeue, demo, SDK commands). Subcommands import their modules when run."""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys
from collections.abc import Sequence
from datetime import datetime
from typing import Literal

from pydantic import ValidationError

from streams import client_cli
from streams.service import ops_cli
from streams.settings import Settings
from streams.stack import cli as stack_cli


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="agentmem", description=__doc__)
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = parser.add_subparsers(dest="command", required=True)
    stack_cli.add_parser(sub)
    demo = sub.add_parser("demo", help="bring the stack up and run the main job on sample data")
    demo.add_argument(
        "--llm",
        action="store_true",
        help="intelligent mode on the local model (`stack up --llm`) instead of the fake",
    )
    sub.add_parser("worker", help="run the index agent (consumes memory.events)")
    api = sub.add_parser("api", help="run the HTTP API")
    api.add_argument("--host")
    api.add_argument("--port", type=int)
    requeue = sub.add_parser(
        "requeue",
        help="send dead-lettered work back: --stage index to memory.events, "
        "--stage enrich to memory.enrich",
    )
    requeue.add_argument("--stage", choices=["index", "enrich"], required=True)
    alias = sub.add_parser("requeue-enrich", help="the same as requeue --stage enrich")
    for parser_ in (requeue, alias):
        parser_.add_argument(
            "--since", type=datetime.fromisoformat, help="only those failed at or after (ISO 8601)"
        )
    client_cli.add_parsers(sub)
    ops_cli.add_parsers(sub)
    return parser


def configure_logging(verbose: bool) -> None:
    logging.basicConfig(
        level=logging.DEBUG if verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    for noisy in ("httpx", "httpcore", "aiokafka", "faust", "mode"):
        logging.getLogger(noisy).setLevel(logging.WARNING)


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    configure_logging(args.verbose)
    try:
        brokers = getattr(args, "kafka_brokers", None)  # `stack up|status --kafka-brokers`
        settings = Settings() if brokers is None else Settings(kafka_brokers=brokers)
    except ValidationError as exc:
        print(f"invalid configuration:\n{exc}", file=sys.stderr)
        return 2
    if args.command == "stack":
        return stack_cli.run(args, settings)
    if args.command == "demo":
        from loadgen import demo  # the demo's load generator and sample data

        return demo.run(settings, llm=args.llm)
    if args.command == "api":
        from streams.http.app import run_api

        return run_api(settings, args.host, args.port)
    if args.command in ("publish", "search", "get", "history", "erase-tenant"):
        return client_cli.run(args, settings)
    if args.command in ("requeue", "requeue-enrich"):
        from streams.service.requeue import requeue

        stage: Literal["index", "enrich"] = (
            "enrich" if args.command == "requeue-enrich" else args.stage
        )
        chosen = asyncio.run(requeue(settings, stage, args.since))
        what = "event(s) to memory.events" if stage == "index" else "enrichment request(s)"
        print(f"requeued {len(chosen.records)} {what}")
        if chosen.truncated:
            print(f"skipped {chosen.truncated} dead letter(s) stored truncated (not resendable)")
        return 0
    if args.command in ("group", "state", "rebuild"):
        return ops_cli.run(args, settings)
    if args.command == "worker":
        from streams.service.worker import run_worker

        return run_worker(settings)
    return 2


if __name__ == "__main__":
    sys.exit(main())
