"""The package's public surface and the client builders of streams.clients."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

import streams
from streams import clients
from streams.stack import modelpack

PUBLIC = {
    "AgentMem",
    "AgentMemSync",
    "EventPublisher",
    "EventType",
    "MemoryEvent",
    "Settings",
    "new_event",
}


def test_the_public_names_resolve_to_their_classes() -> None:
    from processors.core.events import EventType, MemoryEvent, new_event
    from streams.client.publisher import EventPublisher
    from streams.client.sdk import AgentMem, AgentMemSync
    from streams.settings import Settings

    assert set(streams.__all__) == PUBLIC
    assert streams.AgentMem is AgentMem and streams.AgentMemSync is AgentMemSync
    assert streams.EventPublisher is EventPublisher and streams.Settings is Settings
    assert streams.MemoryEvent is MemoryEvent and streams.EventType is EventType
    assert streams.new_event is new_event
    assert set(dir(streams)) >= PUBLIC


def test_an_unknown_name_is_an_attribute_error() -> None:
    with pytest.raises(AttributeError, match="no attribute 'Nope'"):
        _ = streams.Nope


def test_importing_the_package_imports_none_of_it() -> None:
    code = (
        "import sys, streams; print(sorted(m for m in sys.modules"
        " if m.startswith(('streams.', 'processors', 'weaviate', 'aiokafka'))))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def imported_modules(path: Path) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
            names.update(f"{node.module}.{alias.name}" for alias in node.names)
    return names


def test_service_layers_import_neither_loadgen_nor_the_stack_tooling() -> None:
    root = Path(streams.__file__).parent
    paths = [p for layer in ("client", "http", "service") for p in (root / layer).rglob("*.py")]
    for path in [*paths, root / "clients.py", root / "__init__.py"]:
        for name in imported_modules(path):
            assert not name.startswith(("loadgen", "streams.stack")), (path, name)


def test_the_stack_tooling_builds_the_model_pack_where_the_clients_look(tmp_path: Path) -> None:
    assert modelpack.pack_dir is clients.model_pack_dir  # one home, not two copies
    assert clients.MODEL_PACK_VERSION in clients.model_pack_dir(tmp_path).name


def test_kafka_connection_of_settings_or_itself() -> None:
    connection = clients.kafka_connection(streams.Settings(kafka_bootstrap_servers="h:1"))
    assert connection.bootstrap_servers == "h:1"
    assert connection.security_protocol == "PLAINTEXT"
    assert clients.kafka_connection(connection) is connection


async def test_kafka_builders_configure_without_connecting() -> None:
    config = streams.Settings(kafka_bootstrap_servers="127.0.0.1:1")
    follower = clients.follower_consumer(config, from_beginning=True)
    assert follower._enable_auto_commit is False
    latest = clients.follower_consumer(clients.kafka_connection(config), from_beginning=False)
    assert latest._subscription._subscription is None
    producer = clients.resilient_producer(config, delivery_timeout_s=1.5)
    assert producer.delivery_timeout_s == 1.5
    made = clients.kafka_producer(config)
    assert made.client._bootstrap_servers == "127.0.0.1:1"
    admin = clients.kafka_admin(config)
    await admin.close()


def test_weaviate_async_client_is_made_unconnected() -> None:
    client = clients.weaviate_async(streams.Settings(weaviate_http_port=1, weaviate_grpc_port=2))
    assert not client.is_connected()
