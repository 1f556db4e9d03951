"""The local LLM as a stack component: llama-cpp-python's OpenAI-compatible server on
loopback, serving the Qwen2.5-Coder model of ``AGENTMEM_LLM_LOCAL_SIZE``.

Started by ``agentmem stack up --llm`` like the other components (pid file, log,
health check on ``/v1/models``); the worker reaches it through ``AGENTMEM_LLM_*``
(:func:`worker_env` says which).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from streams.settings import Settings
from streams.stack.build import Artifacts
from streams.stack.component import Component
from streams.stack.launcher import http_ok
from streams.stack.llm_model import MODELS, ensure_llm_model, model_path
from streams.stack.llm_runtime import ensure_llm_runtime, runtime_python

#: Worker settings for this server, measured with the 0.5B model on two cores (see
#: ARCHITECTURE.md, "A real model"): it decodes one request at a time, so requests in
#: flight only queue (and their timeouts run while they wait).
LOCAL_TUNING: dict[str, Any] = {
    "llm_batch_size": 8,
    "llm_concurrency": 1,
    "llm_timeout_s": 120.0,
    "llm_attempts": 3,
}


class LlamaServer(Component):
    """``python -m llama_cpp.server`` from the runtime venv in the build cache."""

    name = "llm"

    @property
    def port(self) -> int:
        return self.settings.llm_local_port

    @property
    def model_file(self) -> Path:
        return model_path(self.settings.cache_dir, self.settings.llm_local_size)

    @property
    def alias(self) -> str:
        return MODELS[self.settings.llm_local_size].alias

    @property
    def marker(self) -> str:
        return str(self.model_file)

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    def prepare(self, artifacts: Artifacts) -> None:
        """Build the runtime and assemble the model when the cache lacks them."""
        ensure_llm_runtime(self.settings.cache_dir)
        ensure_llm_model(self.settings.cache_dir, self.settings.llm_local_size)
        self.home.mkdir(parents=True, exist_ok=True)

    def argv(self, artifacts: Artifacts) -> list[str]:
        return server_argv(self.settings)

    def healthy(self) -> bool:
        return http_ok(f"{self.base_url}/models")

    def worker_env(self) -> dict[str, str]:
        """The settings that point a worker at this server, and suit it."""
        tuned = {f"AGENTMEM_{k.upper()}": str(v) for k, v in LOCAL_TUNING.items()}
        return {"AGENTMEM_LLM_BASE_URL": self.base_url, "AGENTMEM_LLM_MODEL": self.alias, **tuned}


def server_argv(settings: Settings) -> list[str]:
    """The command line of the server the settings describe (model, port, context)."""
    threads = settings.llm_local_threads or local_threads(os.cpu_count() or 1)
    return [
        str(runtime_python(settings.cache_dir)),
        "-m",
        "llama_cpp.server",
        "--model",
        str(model_path(settings.cache_dir, settings.llm_local_size)),
        "--model_alias",
        MODELS[settings.llm_local_size].alias,
        "--host",
        "127.0.0.1",
        "--port",
        str(settings.llm_local_port),
        "--n_ctx",
        str(settings.llm_local_ctx),
        "--n_threads",
        str(threads),
        "--n_threads_batch",
        str(threads),
    ]


def local_threads(cores: int) -> int:
    """Threads for the model: a core is left to Kafka, Weaviate and the worker. On two
    busy cores one thread decoded 2-5x faster than two, whose every token waits on a
    barrier that a descheduled thread holds up (unloaded, two were only 25% faster)."""
    return max(1, cores - 1)
