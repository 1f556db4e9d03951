"""`agentmem stack ...` subcommands."""

from __future__ import annotations

import argparse
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from streams.settings import Settings
from streams.stack import build, supervisor
from streams.stack.build import BuildError
from streams.stack.llm_model import LlmModelError, ensure_llm_model
from streams.stack.llm_runtime import LlmRuntimeError, ensure_llm_runtime
from streams.stack.llm_server import LlamaServer
from streams.stack.modelpack import ModelPackError, ensure_pack
from streams.stack.secure import env_file, secure_settings, stack_is_secure
from streams.stack.wheels import WheelError

BUILD_ERRORS = (BuildError, ModelPackError, LlmModelError, LlmRuntimeError, WheelError)


def add_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    stack = sub.add_parser("stack", help="run the local stack (Kafka, Weaviate, Prometheus)")
    actions = stack.add_subparsers(dest="stack_action", required=True)
    build = actions.add_parser("build", help="fetch or build every component into the cache")
    build.add_argument(
        "--component",
        choices=[
            "all",
            "kafka",
            "weaviate",
            "prometheus",
            "model-pack",
            "llm-runtime",
            "llm-model",
        ],
        default="all",
        help="build one component only",
    )
    up = actions.add_parser("up", help="start the stack (reuses running components)")
    up.add_argument("--timeout", type=float, default=180.0, help="seconds to wait for health")
    kafka_brokers_option(up)
    secure_option(up)
    up.add_argument(
        "--llm",
        action="store_true",
        help="also the local LLM server (Qwen2.5-Coder of AGENTMEM_LLM_LOCAL_SIZE)",
    )
    actions.add_parser("down", help="stop the components this stack started")
    status = actions.add_parser("status", help="health, port and pid of each component")
    kafka_brokers_option(status)
    secure_option(status)


def secure_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--secure",
        action="store_true",
        help="Kafka with SASL/SCRAM over TLS and Weaviate with an API key; the credentials "
        "go to <stack dir>/secure/env.sh (source it in the clients' shell)",
    )


def kafka_brokers_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--kafka-brokers",
        type=int,
        metavar="N",
        help="Kafka brokers of the local cluster (AGENTMEM_KAFKA_BROKERS, default 1)",
    )


def build_components(settings: Settings, component: str) -> dict[str, Path]:
    cache = settings.cache_dir
    cache.mkdir(parents=True, exist_ok=True)
    steps: dict[str, Callable[[], Path]] = {
        "kafka": lambda: build.ensure_kafka(cache),
        "weaviate": lambda: build.ensure_weaviate(cache),
        "prometheus": build.ensure_prometheus,
        "model-pack": lambda: ensure_pack(cache),
        "llm-model": lambda: ensure_llm_model(cache, settings.llm_local_size),
    }
    if component == "llm-runtime":
        return {component: ensure_llm_runtime(cache)}
    if component != "all":
        return {component: steps[component]()}
    # The runtime's compile overlaps the other steps, which mostly wait on the network
    # (and Weaviate's cold build, which shares the two cores).
    with ThreadPoolExecutor(max_workers=1) as pool:
        building = pool.submit(ensure_llm_runtime, cache)  # minutes of CPU, cached
        built = {name: step() for name, step in steps.items()}
        built["llm-runtime"] = building.result()
    return built


def print_status(settings: Settings) -> bool:
    rows = supervisor.status(settings)
    print(f"{'component':<12}{'state':<10}{'port':>6}  {'pid':>8}  log")
    for row in rows:
        pid = str(row.pid) if row.pid else "-"
        print(f"{row.name:<12}{row.state:<10}{row.port:>6}  {pid:>8}  {row.log_file}")
    return all(row.state in ("healthy", "foreign") for row in rows)


def run(args: argparse.Namespace, settings: Settings) -> int:
    action = args.stack_action
    if getattr(args, "secure", False):
        try:
            settings = secure_settings(settings)
        except ValueError as exc:
            print(f"stack {action} --secure: {exc}")
            return 2
    if action == "build":
        try:
            built = build_components(settings, args.component)
        except BUILD_ERRORS as exc:
            print(f"stack build failed: {exc}")
            return 1
        for name, path in built.items():
            print(f"{name:<16}{path}")
        return 0
    if action == "up":
        try:
            outcome = supervisor.up(settings, timeout_s=args.timeout, llm=args.llm)
        except (supervisor.StackError, *BUILD_ERRORS) as exc:
            print(f"stack up failed:\n{exc}")
            return 1
        for name, what in outcome.items():
            print(f"{name:<12}{what}")
        print_status(settings)
        if settings.kafka_brokers > 1:
            n, servers = settings.kafka_brokers, settings.kafka_bootstrap_servers
            print(
                f"\nKafka runs {n} brokers ({servers}); give every process (worker, API, "
                f"clients) AGENTMEM_KAFKA_BROKERS={n} (or AGENTMEM_KAFKA_BOOTSTRAP_SERVERS)"
            )
        if stack_is_secure(settings):
            print(
                f"\nKafka takes SASL_SSL (SCRAM) only and Weaviate an API key; give every "
                f"client the credentials with:\n  source {env_file(settings)}"
            )
        if args.llm:
            print("\nPoint a worker at the local LLM with:")
            for key, value in LlamaServer(settings).worker_env().items():
                print(f"  export {key}={value}")
        return 0
    if action == "down":
        for name, what in supervisor.down(settings).items():
            print(f"{name:<12}{what}")
        return 0
    return 0 if print_status(settings) else 1
