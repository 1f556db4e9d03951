from __future__ import annotations

import pytest
from pydantic import ValidationError

from processors.adapters.embedding import MODEL_PACK_NAME as EMBEDDING_PACK_NAME
from streams.settings import MODEL_PACK_NAME, Settings


def test_defaults_match_the_documented_ports() -> None:
    s = Settings()
    assert s.kafka_port == 9092
    assert (s.weaviate_http_port, s.weaviate_grpc_port, s.prometheus_port) == (8080, 50051, 9090)
    assert s.topic("memory.events") == "agentmem.memory.events"
    assert s.stack_dir.is_absolute() and s.cache_dir.is_absolute()


def test_environment_overrides_and_secret_stays_hidden(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AGENTMEM_TOPIC_PREFIX", "prod.")
    monkeypatch.setenv("AGENTMEM_LLM_API_KEY", "sk-secret")
    monkeypatch.setenv("AGENTMEM_MAX_BATCH", "64")
    s = Settings()
    assert s.topic("memory.history") == "prod.memory.history"
    assert s.max_batch == 64
    assert s.llm_api_key.get_secret_value() == "sk-secret"
    assert "sk-secret" not in repr(s)


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("topic_prefix", "bad prefix!"),
        ("weaviate_collection", "lowercase"),
        ("kafka_heap", "lots"),
        ("max_batch", 0),
        ("prometheus_port", 70000),
    ],
)
def test_nonsense_fails_fast(field: str, value: object) -> None:
    with pytest.raises(ValidationError, match=field):
        Settings(**{field: value})


def test_ports_must_be_distinct() -> None:
    with pytest.raises(ValidationError, match="ports must differ"):
        Settings(api_port=9090)


def test_settings_are_frozen() -> None:
    s = Settings()
    with pytest.raises(ValidationError):
        s.max_batch = 3  # type: ignore[misc]


def test_model_pack_name_is_the_embedders() -> None:
    assert MODEL_PACK_NAME == EMBEDDING_PACK_NAME
