"""How Weaviate's answers are judged: per-object refusals, a tenant's batch, whole calls."""

from __future__ import annotations

import logging

import httpx
import pytest
from weaviate.exceptions import UnexpectedStatusCodeError, WeaviateQueryError

from processors.adapters.weaviate.store import (
    ALL_FAILED,
    batch_errors,
    refused,
    tenant_batch_errors,
    transient_refusal,
    whole_call_error,
)
from processors.core.errors import PermanentError, TransientError, is_retriable
from processors.core.objects import ObjectError


@pytest.mark.parametrize(
    ("message", "transient"),
    [
        ("store is read-only due to: manually set by user", True),
        ("tenant t1 is not active", True),
        ("context deadline exceeded", True),
        ("invalid text property 'content': not a string", False),
        ("vector lengths don't match: 384 vs 12", False),
    ],
)
def test_refusals_are_judged_by_what_they_say(message: str, transient: bool) -> None:
    assert transient_refusal(message) is transient
    assert refused(message) == ObjectError(message, transient)


def test_a_shard_level_refusal_fails_every_object_of_the_tenant_batch() -> None:
    """Weaviate (1.35.2, 1.39.0) reports only the first object of a batch into a read-only shard as
    failed; the others come back as written but were not (seen against the real
    server: tests/integration/test_worker_faults.py)."""
    read_only = refused("store is read-only due to: manually set by user")
    got = tenant_batch_errors(["a", "b", "c"], {"a": read_only})
    assert got == {"a": read_only, "b": read_only, "c": read_only}


def test_object_level_refusals_stay_with_their_objects() -> None:
    bad = refused("invalid text property 'content'")
    assert tenant_batch_errors(["a", "b", "c"], {"b": bad}) == {"b": bad}
    assert tenant_batch_errors(["a", "b"], {}) == {}


def test_a_mix_keeps_each_permanent_refusal_and_fails_the_rest_transiently() -> None:
    bad = refused("invalid text property 'content'")
    busy = refused("tenant t1 is not active")
    got = tenant_batch_errors(["a", "b", "c"], {"a": bad, "b": busy})
    assert got == {"a": bad, "b": busy, "c": busy}


def test_client_errors_are_permanent_and_server_errors_transient() -> None:
    def status(code: int) -> UnexpectedStatusCodeError:
        return UnexpectedStatusCodeError("write", httpx.Response(code, json={"error": "x"}))

    rejected = whole_call_error(status(422))
    assert isinstance(rejected, PermanentError) and not is_retriable(rejected)
    for code in (408, 429, 500, 503):
        err = whole_call_error(status(code))
        assert isinstance(err, TransientError) and is_retriable(err), code
    assert isinstance(whole_call_error(WeaviateQueryError("gone", "gRPC")), TransientError)
    plain = ValueError("a bug")
    assert whole_call_error(plain) is plain


def test_the_clients_batch_error_dumps_are_dropped(caplog: pytest.LogCaptureFixture) -> None:
    client_log = logging.getLogger("weaviate-client")
    with caplog.at_level(logging.INFO, logger="weaviate-client"):
        client_log.error({"message": "Failed to send 1 objects", "errors": {0: "x" * 10_000}})
        client_log.error("a plain message stays")
    assert [r.getMessage() for r in caplog.records] == ["a plain message stays"]


READ_ONLY = "store is read-only due to: manually set by user"
INVALID = "invalid text property 'content': not a string"


def test_a_request_of_many_tenants_is_judged_tenant_by_tenant() -> None:
    objects = [("a", "a1"), ("b", "b1"), ("a", "a2"), ("c", "c1"), ("b", "b2"), ("c", "c2")]
    # a: a shard-level refusal of its first object; b: one object refused; c: none
    got = batch_errors(objects, {0: READ_ONLY, 4: INVALID})
    assert got == {"a1": refused(READ_ONLY), "a2": refused(READ_ONLY), "b2": refused(INVALID)}
    assert batch_errors(objects, {}) == {}


def test_a_tenant_whose_every_object_was_refused_gets_the_set_of_its_messages() -> None:
    objects = [("a", "a1"), ("a", "a2"), ("a", "a3"), ("b", "b1")]
    got = batch_errors(objects, {0: INVALID, 1: READ_ONLY, 2: INVALID})
    every = refused(f"{ALL_FAILED}{INVALID}\n{READ_ONLY}")  # sorted, each once
    assert got == {"a1": every, "a2": every, "a3": every}
    assert every.transient  # one transient refusal among them: all may go through later
    only_invalid = batch_errors(objects, {0: INVALID, 1: INVALID, 2: INVALID, 3: INVALID})
    assert only_invalid["b1"] == refused(ALL_FAILED + INVALID)
    assert not only_invalid["a1"].transient
