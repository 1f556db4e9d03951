"""AgentMem Stream: memory for AI agents on Kafka, Weaviate and fastembed.

The public surface, for code that uses the service::

    from streams import AgentMem, Settings, new_event

- :class:`AgentMem` / :class:`AgentMemSync`: the SDK (``streams.client.sdk``);
- :class:`Settings`: the one settings object (``streams.settings``);
- :class:`EventPublisher`: publishing events only (``streams.client.publisher``);
- :class:`MemoryEvent`, :class:`EventType`, :func:`new_event`: the event schema
  (``processors.core.events``).

Everything else is internal: ``streams.client`` (SDK pieces), ``streams.service`` (the
worker), ``streams.http`` (the API), ``streams.clients`` (how Kafka and Weaviate
clients are built), ``streams.stack`` (local stack tooling). The names are imported on
first use (module ``__getattr__``), so ``import streams`` stays cheap.
"""

from __future__ import annotations

import importlib

TYPE_CHECKING = False  # not typing's: importing typing would double this module's cost
if TYPE_CHECKING:
    from typing import Any

    from processors.core.events import EventType, MemoryEvent, new_event
    from streams.client.publisher import EventPublisher
    from streams.client.sdk import AgentMem, AgentMemSync
    from streams.settings import Settings

__all__ = [
    "AgentMem",
    "AgentMemSync",
    "EventPublisher",
    "EventType",
    "MemoryEvent",
    "Settings",
    "new_event",
]

_WHERE = {
    "AgentMem": "streams.client.sdk",
    "AgentMemSync": "streams.client.sdk",
    "EventPublisher": "streams.client.publisher",
    "Settings": "streams.settings",
    "MemoryEvent": "processors.core.events",
    "EventType": "processors.core.events",
    "new_event": "processors.core.events",
}


def __getattr__(name: str) -> Any:
    module = _WHERE.get(name)
    if module is None:
        raise AttributeError(f"module 'streams' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value  # once imported, a plain attribute
    return value


def __dir__() -> list[str]:
    return sorted([*globals(), *__all__])
