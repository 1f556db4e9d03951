from __future__ import annotations

import ast
import dataclasses
import importlib
import re
from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry
from pydantic import SecretStr, ValidationError

import streams.settings as settings_module
from processors.adapters.embedding import MODEL_PACK_NAME as EMBEDDING_PACK_NAME
from processors.metrics import build_metrics
from streams.settings import (
    MODEL_PACK_NAME,
    PROJECT_ROOT,
    SOURCE_CHECKOUT,
    Settings,
    default_cache_dir,
    default_stack_dir,
    source_checkout,
)


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


# -- where state and builds go ------------------------------------------------------------


def test_a_checkout_keeps_state_and_cache_in_it() -> None:
    assert SOURCE_CHECKOUT == PROJECT_ROOT  # the tests run from the checkout
    assert default_stack_dir({}, PROJECT_ROOT) == PROJECT_ROOT / ".stack"
    assert default_cache_dir({}, PROJECT_ROOT) == PROJECT_ROOT / ".cache"


def test_site_packages_is_no_checkout(tmp_path: Path) -> None:
    (tmp_path / "streams").mkdir()
    (tmp_path / "streams" / "settings.py").write_text("")
    assert source_checkout(tmp_path) is None  # an installed package: no pyproject.toml beside
    (tmp_path / "pyproject.toml").write_text("")
    assert source_checkout(tmp_path) == tmp_path


def test_an_installed_package_uses_the_xdg_dirs() -> None:
    env = {"HOME": "/home/u", "XDG_STATE_HOME": "/xdg/state", "XDG_CACHE_HOME": "/xdg/cache"}
    assert default_stack_dir(env, None) == Path("/xdg/state/agentmem")
    assert default_cache_dir(env, None) == Path("/xdg/cache/agentmem")


@pytest.mark.parametrize("xdg", [None, "", "relative/dir"])
def test_without_a_usable_xdg_dir_it_is_under_home(xdg: str | None) -> None:
    env = {"HOME": "/home/u"}
    if xdg is not None:
        env |= {"XDG_STATE_HOME": xdg, "XDG_CACHE_HOME": xdg}
    assert default_stack_dir(env, None) == Path("/home/u/.local/state/agentmem")
    assert default_cache_dir(env, None) == Path("/home/u/.cache/agentmem")


def test_settings_of_an_installed_package(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setattr(settings_module, "SOURCE_CHECKOUT", None)
    monkeypatch.delenv("AGENTMEM_STACK_DIR", raising=False)
    monkeypatch.delenv("AGENTMEM_CACHE_DIR", raising=False)
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "state"))
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    s = Settings()
    assert s.stack_dir == tmp_path / "state" / "agentmem"
    assert s.cache_dir == tmp_path / "cache" / "agentmem"
    monkeypatch.setenv("AGENTMEM_STACK_DIR", str(tmp_path / "mine"))
    assert Settings().stack_dir == tmp_path / "mine"  # a setting still wins


# -- the README documents the code --------------------------------------------------------

README = PROJECT_ROOT / "README.md"


def _readme_section(title: str) -> str:
    text = README.read_text()
    start = text.index(f"\n## {title}\n")
    end = text.find("\n## ", start + 1)
    return text[start:] if end == -1 else text[start:end]


def _configuration_rows() -> dict[str, str]:
    """Variable -> its default cell, from the README's configuration table."""
    rows: dict[str, str] = {}
    for line in _readme_section("Configuration").splitlines():
        cells = [cell.strip() for cell in line.strip().strip("|").split("|")]
        if len(cells) == 3 and (found := re.fullmatch(r"`(AGENTMEM_[A-Z0-9_]+)`", cells[0])):
            rows[found[1]] = cells[1]
    return rows


def _documented(default: object) -> str:
    if isinstance(default, SecretStr):
        default = default.get_secret_value()
    if default is None:
        return "unset"
    if default == "":
        return "empty"
    if isinstance(default, float) and default.is_integer():
        default = int(default)
    return f"`{default}`"


def test_readme_configuration_table_lists_every_setting_and_no_other() -> None:
    rows = _configuration_rows()
    fields = {f"AGENTMEM_{name.upper()}": field for name, field in Settings.model_fields.items()}
    assert sorted(rows) == sorted(fields)
    for variable, field in fields.items():
        if field.default_factory is not None:  # stack_dir, cache_dir: described in words
            continue
        cell = rows[variable]
        expected = _documented(field.default)
        assert cell == expected or cell.startswith(f"{expected} ("), (variable, cell, expected)


def test_readme_metrics_table_lists_every_metric_and_no_other() -> None:
    documented = set(re.findall(r"`(agentmem_[a-z_]+)", _readme_section("Metrics")))
    metrics = build_metrics(CollectorRegistry())
    names = set()
    for field in dataclasses.fields(metrics):
        metric = getattr(metrics, field.name)
        name = metric._name + ("_total" if metric._type == "counter" else "")
        names.add(name)
    assert documented == names


def test_readme_first_example_uses_only_the_public_surface() -> None:
    block = _readme_section("A first memory").split("```python\n", 1)[1].split("```", 1)[0]
    tree = ast.parse(block)
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom):
            assert node.module in ("streams", "processors"), node.module
            public = importlib.import_module(node.module).__all__
            assert {alias.name for alias in node.names} <= set(public), ast.unparse(node)
        elif isinstance(node, ast.Import):
            assert {alias.name for alias in node.names} <= {"asyncio"}, ast.unparse(node)
