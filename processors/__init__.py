"""AgentMem's processing: the public surface of events, validation and errors. Pure.

Layout: ``core`` (the pure domain), ``ports`` (what the stages need from the
world), ``stages`` (index and enrich over the ports, with their shared skeleton),
``adapters`` (Kafka, Weaviate, fastembed, the LLM endpoint) and ``metrics``. This
module imports from ``core`` only, so that ``import processors`` stays light: the
adapters (fastembed, weaviate) are imported by whoever wires them.
"""

from processors.core.errors import PermanentError, TransientError, is_retriable
from processors.core.events import EventType, MemoryEvent, Mode, new_event
from processors.core.reasons import Reason
from processors.core.records import OutRecord, SourceRef
from processors.core.state import MemoryState
from processors.core.validation import Limits, Rejection, check_key, parse_event

__all__ = [
    "EventType",
    "Limits",
    "MemoryEvent",
    "MemoryState",
    "Mode",
    "OutRecord",
    "PermanentError",
    "Reason",
    "Rejection",
    "SourceRef",
    "TransientError",
    "check_key",
    "is_retriable",
    "new_event",
    "parse_event",
]
