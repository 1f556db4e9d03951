"""Fetch or build every stack component into the git-ignored cache, once.

* Kafka: broker jars from Maven Central (``mvn dependency:copy-dependencies``).
* Weaviate: ``go install`` of the server's Go module at a pinned tag.
* Prometheus: Debian's package, installed with apt-get when missing.
* Embedding model pack: see :mod:`streams.stack.modelpack`.

Each step is idempotent: a finished artifact is recognised and reused.
"""

from __future__ import annotations

import logging
import os
import shutil
import subprocess
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

from streams.stack.modelpack import ensure_pack

log = logging.getLogger(__name__)

KAFKA_VERSION = "3.9.1"
WEAVIATE_VERSION = "v1.39.0"
WEAVIATE_MODULE = "github.com/weaviate/weaviate/cmd/weaviate-server"


class BuildError(RuntimeError):
    """A component could not be fetched or built."""


@dataclass(frozen=True)
class Artifacts:
    kafka_libs: Path
    weaviate_bin: Path
    prometheus_bin: Path
    model_pack: Path


def _run(
    cmd: list[str],
    what: str,
    cwd: Path | None = None,
    env: dict[str, str] | None = None,
) -> None:
    log.info("%s: %s", what, " ".join(cmd))
    result = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        raise BuildError(
            f"{what} failed ({result.returncode}):\n{(result.stdout + result.stderr)[-3000:]}"
        )


def kafka_libs_dir(cache_dir: Path) -> Path:
    return cache_dir / "kafka" / KAFKA_VERSION / "libs"


def ensure_kafka(cache_dir: Path) -> Path:
    libs = kafka_libs_dir(cache_dir)
    done = libs / ".complete"
    if done.exists():
        return libs
    if shutil.which("mvn") is None:
        raise BuildError(
            "Maven (mvn) is needed to fetch the Kafka jars; install it (apt-get install maven)"
        )
    work = libs.parent
    work.mkdir(parents=True, exist_ok=True)
    pom = work / "pom.xml"
    pom.write_text(resources.files("streams.stack").joinpath("kafka-pom.xml").read_text())
    _run(
        [
            "mvn",
            "-q",
            "-B",
            "-f",
            str(pom),
            f"-Dkafka.version={KAFKA_VERSION}",
            "dependency:copy-dependencies",
            f"-DoutputDirectory={libs}",
        ],
        "fetch Kafka jars",
    )
    if not list(libs.glob(f"kafka_2.13-{KAFKA_VERSION}.jar")):
        raise BuildError(f"kafka_2.13-{KAFKA_VERSION}.jar missing after the Maven fetch")
    done.write_text(KAFKA_VERSION + "\n")
    return libs


def weaviate_bin_path(cache_dir: Path) -> Path:
    return cache_dir / "weaviate" / WEAVIATE_VERSION / "weaviate-server"


def ensure_weaviate(cache_dir: Path) -> Path:
    binary = weaviate_bin_path(cache_dir)
    if binary.is_file() and os.access(binary, os.X_OK):
        return binary
    if shutil.which("go") is None:
        raise BuildError("Go is needed to build Weaviate; install a Go toolchain (1.24 or newer)")
    binary.parent.mkdir(parents=True, exist_ok=True)
    env = dict(os.environ, CGO_ENABLED="0", GOBIN=str(binary.parent))
    _run(["go", "install", f"{WEAVIATE_MODULE}@{WEAVIATE_VERSION}"], "build Weaviate", env=env)
    if not binary.is_file():
        raise BuildError(f"go install finished but {binary} is missing")
    return binary


def ensure_prometheus() -> Path:
    found = shutil.which("prometheus")
    if found:
        return Path(found)
    if os.geteuid() != 0 or shutil.which("apt-get") is None:
        raise BuildError(
            "Prometheus is missing: install Debian's package (apt-get install prometheus)"
        )
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    _run(["apt-get", "update", "-q"], "apt-get update", env=env)
    _run(
        ["apt-get", "install", "-y", "-q", "--no-install-recommends", "prometheus"],
        "install Prometheus",
        env=env,
    )
    found = shutil.which("prometheus")
    if not found:
        raise BuildError("apt-get installed prometheus but it is not on PATH")
    return Path(found)


def ensure_all(cache_dir: Path) -> Artifacts:
    """Fetch or build everything the local stack runs; fast when already cached."""
    cache_dir.mkdir(parents=True, exist_ok=True)
    return Artifacts(
        kafka_libs=ensure_kafka(cache_dir),
        weaviate_bin=ensure_weaviate(cache_dir),
        prometheus_bin=ensure_prometheus(),
        model_pack=ensure_pack(cache_dir),
    )
