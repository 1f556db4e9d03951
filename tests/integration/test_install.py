"""The package installed the way a user installs it: `pip install .` into a fresh venv,
then `agentmem stack up` and `agentmem demo` from an empty folder, with no checkout in
sight. State must land in the user's state dir, not in site-packages.

The private stack runs on free ports (the default-port stack may be up) and reuses the
shared build cache (`AGENTMEM_CACHE_DIR`): nothing is rebuilt. The dependencies come from
a wheelhouse kept in that cache (~110 MB): the first run fills it from the index, later
runs install offline. Measured on the 2-core machine, busy with other test runs: install
about 2 minutes either way (offline without byte-compiling: ~75 s), the whole test 5-6
minutes, most of it the demo's 2,000 events.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from streams.settings import Settings
from streams.stack.launcher import free_port_range

ROOT = Path(__file__).resolve().parents[2]
# ports of the private stack, consecutive from a free base: kafka + its controller,
# weaviate http, grpc, the 4 cluster ports, weaviate metrics, prometheus, worker, api, llm
PORT_BLOCK = 13


def copy_source(dest: Path) -> Path:
    """What a commit would hold (tracked and not-ignored files), so that the build sees
    neither .venv, .stack nor a stale build/ and leaves nothing in the checkout."""
    listed = subprocess.run(
        ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
        cwd=ROOT,
        capture_output=True,
        check=True,
    ).stdout.decode()
    for name in filter(None, listed.split("\0")):
        src = ROOT / name
        if not src.is_symlink() and not src.exists():
            continue  # deleted in the work tree, not yet in the index
        target = dest / name
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(src, target, follow_symlinks=False)
    return dest


def _pip(venv: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(venv / "bin" / "python"), "-m", "pip", "--disable-pip-version-check", *args],
        capture_output=True,
        text=True,
        check=False,
        timeout=900,
    )


def install(source: Path, venv: Path, wheelhouse: Path) -> str:
    """`pip install <source>` into a new venv; 'offline' when the wheelhouse held every
    dependency, 'refreshed' when it had to be filled from the index first."""
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=300)
    # --no-compile: byte-compiling ~100 packages is a good part of the install time
    offline = ("install", "-q", "--no-compile", "--no-index", "--find-links", str(wheelhouse))
    offline += (str(source),)
    if wheelhouse.is_dir() and _pip(venv, *offline).returncode == 0:
        return "offline"
    wheelhouse.mkdir(parents=True, exist_ok=True)
    # setuptools too: the isolated build of the project needs it and cannot reach the index
    filled = _pip(venv, "wheel", "-q", "-w", str(wheelhouse), str(source), "setuptools>=77")
    assert filled.returncode == 0, filled.stdout + filled.stderr
    for built in wheelhouse.glob("agentmem_stream-*.whl"):
        built.unlink()  # the project is always built from the source
    done = _pip(venv, *offline)
    assert done.returncode == 0, done.stdout + done.stderr
    return "refreshed"


def _run(
    argv: list[str], cwd: Path, env: dict[str, str], timeout: float
) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(
        argv, cwd=cwd, env=env, capture_output=True, text=True, check=False, timeout=timeout
    )
    sys.stdout.write(f"$ {' '.join(argv[-2:])}\n{result.stdout}{result.stderr}")
    return result


def _loaded_rule_groups(prometheus_port: int) -> list[str]:
    url = f"http://127.0.0.1:{prometheus_port}/api/v1/rules"
    with urllib.request.urlopen(url, timeout=10) as response:
        groups = json.load(response)["data"]["groups"]
    return [group["name"] for group in groups]


def _site_packages(venv: Path, cwd: Path) -> Path:
    """Where the venv's python imports ``streams`` from (its site-packages)."""
    found = subprocess.run(
        [str(venv / "bin" / "python"), "-c", "import streams; print(streams.__file__)"],
        capture_output=True,
        text=True,
        check=True,
        cwd=cwd,
    ).stdout.strip()
    return Path(found).parents[1]


def _private_env(home: Path, cache_dir: Path, p: int) -> dict[str, str]:
    """The environment of the private stack: our own HOME, the shared build cache and
    the ``PORT_BLOCK`` ports from ``p``; no AGENTMEM_, XDG_ or PYTHONPATH of ours."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AGENTMEM_", "XDG_"))}
    env.pop("PYTHONPATH", None)
    env.update(
        HOME=str(home),
        AGENTMEM_CACHE_DIR=str(cache_dir),
        AGENTMEM_KAFKA_BOOTSTRAP_SERVERS=f"127.0.0.1:{p}",  # controller: p + 1
        AGENTMEM_WEAVIATE_HTTP_PORT=str(p + 2),
        AGENTMEM_WEAVIATE_GRPC_PORT=str(p + 3),
        AGENTMEM_WEAVIATE_CLUSTER_BASE_PORT=str(p + 4),  # .. p + 7
        AGENTMEM_WEAVIATE_METRICS_PORT=str(p + 8),
        AGENTMEM_PROMETHEUS_PORT=str(p + 9),
        AGENTMEM_WORKER_METRICS_PORT=str(p + 10),
        AGENTMEM_API_PORT=str(p + 11),
        AGENTMEM_LLM_BASE_URL=f"http://127.0.0.1:{p + 12}/v1",
        AGENTMEM_KAFKA_HEAP="512m",
    )
    return env


def _run_stack_and_demo(
    agentmem: str, empty: Path, env: dict[str, str], state: Path, site_packages: Path, p: int
) -> None:
    """`stack status`, `stack up` and `demo` from the empty folder, and where they left
    their state."""
    status = _run([agentmem, "stack", "status"], empty, env, timeout=120)
    assert "Traceback" not in status.stdout + status.stderr
    up = _run([agentmem, "stack", "up"], empty, env, timeout=600)
    assert up.returncode == 0, up.stdout + up.stderr
    demo = _run([agentmem, "demo"], empty, env, timeout=900)
    assert demo.returncode == 0, demo.stdout + demo.stderr
    assert "Traceback" not in demo.stdout + demo.stderr

    for part in ("kafka", "weaviate", "prometheus", "worker", "logs", "pids"):
        assert (state / part).is_dir(), f"{part} missing under {state}"
    assert list(empty.iterdir()) == [], "the demo wrote into the current folder"
    assert not (site_packages / ".stack").exists()
    assert not (site_packages / ".cache").exists()
    # the shipped Prometheus config and rules, loaded by the private Prometheus
    config = (state / "prometheus" / "prometheus.yml").read_text()
    assert str(site_packages / "streams") in config, config
    assert _loaded_rule_groups(p + 9), "Prometheus loaded no rule group"


@pytest.mark.timeout(1800)
def test_installed_package_runs_the_stack_and_the_demo_from_an_empty_folder(
    tmp_path: Path,
) -> None:
    started = time.monotonic()
    cache_dir = Settings().cache_dir  # the shared build cache: Kafka, Weaviate, model pack
    venv = tmp_path / "venv"
    how = install(copy_source(tmp_path / "src"), venv, cache_dir / "install-test" / "wheels")
    installed_s = time.monotonic() - started
    agentmem = str(venv / "bin" / "agentmem")
    site_packages = _site_packages(venv, tmp_path)
    assert site_packages.is_relative_to(venv), site_packages  # not the checkout

    home = tmp_path / "home"
    empty = tmp_path / "empty"
    home.mkdir()
    empty.mkdir()
    p = free_port_range(PORT_BLOCK)
    env = _private_env(home, cache_dir, p)
    state = home / ".local" / "state" / "agentmem"  # no XDG_STATE_HOME: its fallback
    try:
        _run_stack_and_demo(agentmem, empty, env, state, site_packages, p)
    finally:
        down = _run([agentmem, "stack", "down"], empty, env, timeout=300)
        left = subprocess.run(
            ["pgrep", "-af", str(tmp_path)], capture_output=True, text=True, check=False
        ).stdout.strip()
        sys.stdout.write(
            f"install ({how}) {installed_s:.0f}s, total {time.monotonic() - started:.0f}s\n"
        )
    assert down.returncode == 0, down.stdout + down.stderr
    assert left == "", f"processes of the private stack still run:\n{left}"
