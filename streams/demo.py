"""`agentmem demo`: the main job on the local stack, with directions to each part."""

from __future__ import annotations

from streams.settings import Settings
from streams.stack import supervisor


def endpoints(settings: Settings) -> list[tuple[str, str]]:
    return [
        ("Kafka bootstrap", settings.kafka_bootstrap_servers),
        ("Weaviate REST", f"{settings.weaviate_url}/v1/meta"),
        ("Weaviate gRPC", f"{settings.weaviate_host}:{settings.weaviate_grpc_port}"),
        ("Prometheus", f"{settings.prometheus_url}/targets"),
        ("Worker metrics", f"http://127.0.0.1:{settings.worker_metrics_port}/metrics"),
        ("Logs", str(settings.stack_dir / "logs")),
    ]


def print_endpoints(settings: Settings) -> None:
    print("\nWhere everything is:")
    for name, where in endpoints(settings):
        print(f"  {name:<16} {where}")
    print("\nStop the stack with `make down` (or `agentmem stack down`).")


def run(settings: Settings) -> int:
    try:
        outcome = supervisor.up(settings)
    except supervisor.StackError as exc:
        print(f"stack up failed:\n{exc}")
        return 1
    print("Local stack: " + ", ".join(f"{k} {v}" for k, v in outcome.items()))
    print_endpoints(settings)
    return 0
