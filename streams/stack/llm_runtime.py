"""The local LLM server's runtime: llama-cpp-python built from its sdist into a venv of
its own in the build cache, once.

``llama-cpp-python[server]`` serves an OpenAI-compatible ``/v1/chat/completions``. It
is built with the system CMake and compiler (about six minutes on two cores) and
``-DGGML_NATIVE=OFF``, so that the build does not tune itself to this machine's CPU
and a cached build moves between machines. It lives in its own venv, never in the
project's: the service does not depend on it, and its pins (numpy, fastapi) stay its
own. The build log is kept beside it; a build that did not finish is started again.
"""

from __future__ import annotations

import logging
import os
import shutil
import subprocess
import sys
from pathlib import Path

log = logging.getLogger(__name__)

LLAMA_CPP_VERSION = "0.3.36"
CMAKE_ARGS = "-DGGML_NATIVE=OFF"


class LlmRuntimeError(RuntimeError):
    """The runtime could not be built."""


def runtime_dir(cache_dir: Path) -> Path:
    return cache_dir / "llama-cpp-python" / LLAMA_CPP_VERSION


def runtime_python(cache_dir: Path) -> Path:
    """The interpreter that runs ``python -m llama_cpp.server``."""
    return runtime_dir(cache_dir) / "venv" / "bin" / "python"


def is_built(cache_dir: Path) -> bool:
    return (runtime_dir(cache_dir) / ".complete").is_file() and runtime_python(cache_dir).exists()


def _run(cmd: list[str], build_log: Path, env: dict[str, str]) -> None:
    with build_log.open("a") as out:
        out.write(f"$ {' '.join(cmd)}\n")
        out.flush()
        result = subprocess.run(cmd, stdout=out, stderr=subprocess.STDOUT, env=env, check=False)
    if result.returncode != 0:
        tail = build_log.read_text(errors="replace")[-3000:]
        raise LlmRuntimeError(f"{cmd[0]} failed ({result.returncode}), see {build_log}:\n{tail}")


def ensure_llm_runtime(cache_dir: Path) -> Path:
    """Build (once) and return the runtime's interpreter."""
    if is_built(cache_dir):
        return runtime_python(cache_dir)
    home = runtime_dir(cache_dir)
    shutil.rmtree(home / "venv", ignore_errors=True)  # a build that did not finish
    home.mkdir(parents=True, exist_ok=True)
    build_log = home / "build.log"
    build_log.write_text("")
    env = dict(
        os.environ,
        CMAKE_ARGS=CMAKE_ARGS,
        CMAKE_BUILD_PARALLEL_LEVEL=str(os.cpu_count() or 2),
    )
    python = str(runtime_python(cache_dir))
    log.info(
        "building llama-cpp-python %s into %s (minutes; log %s)", LLAMA_CPP_VERSION, home, build_log
    )
    _run([sys.executable, "-m", "venv", str(home / "venv")], build_log, env)
    _run([python, "-m", "pip", "install", "-q", "--upgrade", "pip"], build_log, env)
    requirement = f"llama-cpp-python[server]=={LLAMA_CPP_VERSION}"
    _run(
        [python, "-m", "pip", "install", "--no-binary", "llama-cpp-python", requirement],
        build_log,
        env,
    )
    _run([python, "-c", "import llama_cpp.server.app"], build_log, env)
    (home / ".complete").write_text(f"{LLAMA_CPP_VERSION} {CMAKE_ARGS}\n")
    return runtime_python(cache_dir)
