"""Every dead-letter reason code, in one list. Pure.

A dead letter's ``reason`` (and the ``events_failed``/``deadletters`` metric label) is
one of these values. :class:`Reason` is a ``StrEnum``: a member equals its string, so
code and tests may compare with either.
"""

from __future__ import annotations

from enum import StrEnum


class Reason(StrEnum):
    # -- validate: the value as bytes ------------------------------------------------
    EMPTY_VALUE = "empty_value"  # no value, or an empty one
    EVENT_TOO_LARGE = "event_too_large"  # the value is longer than Limits.max_event_bytes
    INVALID_UTF8 = "invalid_utf8"  # the value is not UTF-8
    INVALID_JSON = "invalid_json"  # not JSON (also: starts with a byte order mark)
    NOT_AN_OBJECT = "not_an_object"  # JSON, but not an object
    TOO_DEEP = "too_deep"  # nested deeper than Limits.max_depth
    NUMBER_OUT_OF_RANGE = "number_out_of_range"  # an integer outside the 64-bit ranges
    INVALID_UNICODE = "invalid_unicode"  # a string holds a lone surrogate (\ud800 escape)
    # -- validate: the envelope ------------------------------------------------------
    UNSUPPORTED_SCHEMA = "unsupported_schema"  # schema is not agentmem.memory/v1
    MISSING_FIELD = "missing_field"  # type or event_id is missing
    UNKNOWN_TYPE = "unknown_type"  # type is not one of the event types
    MISSING_TENANT = "missing_tenant"  # tenant is missing or empty
    INVALID_TENANT = "invalid_tenant"  # tenant does not match TENANT_PATTERN
    CONTENT_TOO_LARGE = "content_too_large"  # content is longer than the limit (UTF-8 bytes)
    METADATA_TOO_LARGE = "metadata_too_large"  # metadata as JSON is longer than the limit
    # -- validate: the schema --------------------------------------------------------
    UNKNOWN_FIELD = "unknown_field"  # a field the schema does not know
    INVALID_FIELD = "invalid_field"  # a field of the wrong type or form
    # -- validate: the meaning -------------------------------------------------------
    MISSING_CONTENT = "missing_content"  # an add or update without content
    MISSING_MEMORY_ID = "missing_memory_id"  # update, delete or erase without memory_id
    INVALID_MEMORY_ID = "invalid_memory_id"  # memory_id does not match MEMORY_ID_PATTERN
    NOT_FOR_TENANT_ERASE = "not_for_tenant_erase"  # an erase_tenant with a memory's fields
    INVALID_AGENT_ID = "invalid_agent_id"  # agent_id does not match SHORT_ID_PATTERN
    INVALID_RUN_ID = "invalid_run_id"  # run_id does not match SHORT_ID_PATTERN
    VECTOR_DIMENSION = "vector_dimension"  # the vector has the wrong number of dimensions
    INVALID_VECTOR = "invalid_vector"  # the vector holds NaN or infinite values
    UNPARSEABLE = "unparseable"  # parse_event's last guard: an error nothing else foresaw
    # -- validate: the record key ----------------------------------------------------
    MISSING_KEY = "missing_key"  # the record has no key (it must be the tenant)
    KEY_MISMATCH = "key_mismatch"  # the record key is not the event's tenant
    # -- apply and index -------------------------------------------------------------
    MEMORY_NOT_FOUND = "memory_not_found"  # plan refusal: update of no live memory
    INTERNAL_ERROR = "internal_error"  # a batch failed repeatedly; its events are set aside
    WEAVIATE_REJECTED = "weaviate_rejected"  # Weaviate refused the object for good
    WEAVIATE_UNAVAILABLE = "weaviate_unavailable"  # Weaviate stayed unreachable past the budget
    TENANT_NOT_FOUND = "tenant_not_found"  # the tenant does not exist in Weaviate
    # Kafka refusals no retry can fix (adapters.kafka_errors.kafka_permanent_reason)
    RECORD_TOO_LARGE = "record_too_large"  # larger than the producer or broker accepts
    KAFKA_UNAUTHORIZED = "kafka_unauthorized"  # the client may not write the topic
    KAFKA_REFUSED = "kafka_refused"  # another non-retriable refusal of the broker
    # -- enrich ----------------------------------------------------------------------
    INVALID_REQUEST = "invalid_request"  # an enrich request that does not parse
    TIMEOUT = "timeout"  # LLM: the request timed out
    CONNECTION_ERROR = "connection_error"  # LLM: the endpoint could not be reached
    RATE_LIMITED = "rate_limited"  # LLM: HTTP 429
    SERVER_ERROR = "server_error"  # LLM: HTTP 5xx, 408 or 409
    REJECTED = "rejected"  # LLM: another HTTP error status (the request itself is refused)
    CLIENT_ERROR = "client_error"  # LLM: the client failed before an answer
    INVALID_ANSWER = "invalid_answer"  # LLM: the answer did not parse as what was asked
    CIRCUIT_OPEN = "circuit_open"  # LLM: the circuit breaker is open, no request was made
