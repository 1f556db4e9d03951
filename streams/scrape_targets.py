"""Extra Prometheus scrape targets: workers and APIs that tests and benchmarks start on any port.

The local Prometheus reads every `*.json` file of `<stack_dir>/prometheus/targets/`
(`file_sd_configs`; docker-compose: `dashboards/prometheus/targets/`), each a list of
target groups: `[{"targets": ["127.0.0.1:9311"], "labels": {"job": "bench-worker"}}]`.
A `job` label in the file replaces the scrape job's name, so a test can give its own
processes a job of their own and query exactly their series. Prometheus notices new,
changed and removed files by itself; no reload is needed.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path

from streams.settings import Settings

FILE_SD_JOB = "agentmem-file-sd"
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,120}")


def targets_dir(settings: Settings) -> Path:
    """The folder the local stack's Prometheus watches for target files."""
    return settings.stack_dir / "prometheus" / "targets"


def workers_dir(settings: Settings) -> Path:
    """Where workers register themselves: the local stack's ``agentmem-worker`` job reads
    it (each worker on whatever port it got), so any number of them is scraped."""
    return targets_dir(settings) / WORKERS


#: The subfolder of :func:`targets_dir` of the workers' own target files.
WORKERS = "workers"


def _path(settings: Settings, name: str, folder: str | None = None) -> Path:
    if not _NAME.fullmatch(name):
        raise ValueError(f"target file names hold letters, digits, '.', '_', '-': {name!r}")
    base = targets_dir(settings) if folder is None else targets_dir(settings) / folder
    return base / f"{name}.json"


def register(
    settings: Settings,
    name: str,
    addresses: Sequence[str],
    labels: Mapping[str, str],
    *,
    folder: str | None = None,
) -> Path:
    """Write (atomically) the target file `name` (in ``folder`` of the targets dir):
    Prometheus scrapes `addresses` from now on."""
    path = _path(settings, name, folder)
    path.parent.mkdir(parents=True, exist_ok=True)
    groups = [{"targets": list(addresses), "labels": dict(labels)}]
    tmp = path.with_name(f".{path.name}.tmp")  # not *.json: Prometheus never reads it half written
    tmp.write_text(json.dumps(groups, indent=2) + "\n")
    os.replace(tmp, path)
    return path


def unregister(settings: Settings, name: str, *, folder: str | None = None) -> bool:
    """Remove the target file `name`; whether there was one."""
    try:
        _path(settings, name, folder).unlink()
    except FileNotFoundError:
        return False
    return True


@contextmanager
def registered(
    settings: Settings, name: str, addresses: Sequence[str], labels: Mapping[str, str]
) -> Iterator[Path]:
    """A target file for the duration of a block."""
    path = register(settings, name, addresses, labels)
    try:
        yield path
    finally:
        unregister(settings, name)
