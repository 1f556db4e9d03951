"""`agentmem stack up|down|status`: bring the local stack up, reuse what runs, stop only ours."""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, replace
from pathlib import Path

from streams.settings import Settings
from streams.stack import launcher, process
from streams.stack.build import ensure_all
from streams.stack.component import Component
from streams.stack.components import components
from streams.stack.kafka_node import Kafka, KafkaLeftover, kafka_leftovers, kafka_nodes
from streams.stack.launcher import port_open, port_released
from streams.stack.llm_server import LlamaServer
from streams.stack.secure import check_stack_credentials, stack_is_secure
from streams.stack.worker_daemon import stop_fake_llm, stop_worker

log = logging.getLogger(__name__)

# How long `up` waits for a port held by something that is not healthy to be let go
# (a component killed a moment ago) before calling it taken.
PORT_GRACE_S = 10.0


class StackError(RuntimeError):
    """A component failed to start or become healthy."""


@dataclass(frozen=True)
class ComponentStatus:
    name: str
    state: str  # healthy | starting | stopped | foreign
    port: int
    pid: int | None
    log_file: str


def stack_components(settings: Settings, llm: bool) -> list[Component]:
    """The stack's components, with the local LLM server when ``llm``."""
    return [*components(settings), *([LlamaServer(settings)] if llm else [])]


def status(settings: Settings) -> list[ComponentStatus]:
    rows = []
    llm = LlamaServer(settings)
    # the LLM server shows only while it runs: it is not part of every stack
    for comp in stack_components(settings, process.running_pid(llm.files, llm.marker) is not None):
        pid = process.running_pid(comp.files, comp.marker)
        if comp.healthy():
            state = "healthy" if pid is not None else "foreign"
        elif pid is not None:
            state = "starting"
        else:
            state = "stopped"
        rows.append(ComponentStatus(comp.name, state, comp.port, pid, str(comp.files.log_file)))
    leftovers = kafka_leftovers(settings)
    if leftovers:  # their ports answer, but not for the nodes the settings describe
        taken = {node.port for node in leftovers}
        rows = [
            replace(row, state="stopped") if row.pid is None and row.port in taken else row
            for row in rows
        ]
    return rows + [_leftover_status(node) for node in leftovers]


def _leftover_status(node: KafkaLeftover) -> ComponentStatus:
    """A Kafka node started for another broker count: it runs, but is not what the
    settings ask for (state "other")."""
    return ComponentStatus(node.name, "other", node.port, node.pid, str(node.files.log_file))


def _refuse_other_kafka(settings: Settings) -> None:
    leftovers = kafka_leftovers(settings)
    if leftovers:
        names = ", ".join(f"{n.name} (pid {n.pid})" for n in leftovers)
        raise StackError(
            f"Kafka runs here with another broker count ({names}); the settings ask for "
            f"{settings.kafka_brokers} (AGENTMEM_KAFKA_BROKERS, --kafka-brokers). Run "
            "`agentmem stack down` first, or give the broker count it was started with"
        )


def _wait_healthy(pending: list[Component], timeout_s: float) -> list[Component]:
    """Wait until every component is healthy; return the ones that are not."""
    deadline = time.monotonic() + timeout_s
    while pending and time.monotonic() < deadline:
        still = []
        for comp in pending:
            if comp.healthy():
                log.info("%s is healthy on port %d", comp.name, comp.port)
                continue
            if process.running_pid(comp.files, comp.marker) is None:
                log.error("%s exited during start-up", comp.name)
                return [comp, *[c for c in pending if c is not comp]]
            still.append(comp)
        pending = still
        if pending:
            time.sleep(0.5)
    return pending


def _mode(settings: Settings) -> str:
    return "secure" if stack_is_secure(settings) else "plaintext"


def _mode_file(settings: Settings) -> Path:
    return settings.stack_dir / "stack-mode"


def _refuse_other_mode(settings: Settings, components: list[Component]) -> None:
    """A stack that runs plaintext is not reused as a secure one, nor the reverse; and
    secure settings must carry this stack's credentials."""
    try:
        check_stack_credentials(settings)
    except ValueError as exc:
        raise StackError(str(exc)) from exc
    path = _mode_file(settings)
    running = [c.name for c in components if process.running_pid(c.files, c.marker)]
    recorded = path.read_text().strip() if path.exists() else "plaintext"
    if running and recorded != _mode(settings):
        raise StackError(
            f"the stack runs {recorded} ({', '.join(running)}) and the settings ask for "
            f"{_mode(settings)}: `agentmem stack down` first"
        )


def up(settings: Settings, timeout_s: float = 180.0, *, llm: bool = False) -> dict[str, str]:
    """Start what is not running, reuse what is; return component -> 'started'|'reused'.
    ``llm``: the local LLM server too (built into the cache first if need be). Secure
    settings (`stack up --secure`) start Kafka with SASL_SSL and Weaviate with an API key."""
    _refuse_other_kafka(settings)
    _refuse_other_mode(settings, stack_components(settings, llm))
    artifacts = ensure_all(settings.cache_dir)
    outcome: dict[str, str] = {}
    to_wait: list[Component] = []
    settings.stack_dir.mkdir(parents=True, exist_ok=True)
    _mode_file(settings).write_text(_mode(settings) + "\n")
    for comp in stack_components(settings, llm):
        pid = process.running_pid(comp.files, comp.marker)
        if pid is not None:
            outcome[comp.name] = "reused"
            to_wait.append(comp)
            continue
        if port_open(comp.port):
            if comp.healthy():
                log.warning(
                    "%s already answers on port %d (not started by us); reusing it",
                    comp.name,
                    comp.port,
                )
                outcome[comp.name] = "foreign"
                continue
            if not port_released(comp.port, PORT_GRACE_S):
                raise StackError(f"port {comp.port} for {comp.name} is taken by another process")
        comp.prepare(artifacts)
        process.start(comp.argv(artifacts), comp.files, env=comp.env(), cwd=comp.home)
        outcome[comp.name] = "started"
        to_wait.append(comp)
    failed = _wait_healthy(to_wait, timeout_s)
    if failed:
        report = "\n\n".join(
            f"{c.name} did not become healthy on port {c.port}; last lines of "
            f"{c.files.log_file}:\n{launcher.tail(c.files.log_file)}"
            for c in failed
        )
        raise StackError(report)
    for comp in to_wait:
        if outcome[comp.name] == "reused":
            try:
                comp.refresh()  # e.g. Prometheus picks up changed scrape config and rules
            except RuntimeError as exc:
                raise StackError(f"{comp.name}: {exc}") from exc
    return outcome


def down(settings: Settings) -> dict[str, str]:
    """Stop the components we started, in reverse order; leave anything else alone."""
    outcome = {"worker": "stopped" if stop_worker(settings) else "not running"}
    outcome["fake-llm"] = "stopped" if stop_fake_llm(settings) else "not running"
    for comp in reversed(stack_components(settings, llm=True)):
        if isinstance(comp, Kafka):
            continue  # below, every node at once
        stopped = process.stop(comp.files, comp.marker, timeout_s=45.0)
        outcome[comp.name] = "stopped" if stopped else "not running"
    # The Kafka nodes, with any started for another broker count, stopped together: one
    # after the other, the last would wait for a controller quorum that is gone.
    nodes: list[Kafka | KafkaLeftover] = [*kafka_nodes(settings), *kafka_leftovers(settings)]
    stopped_nodes = process.stop_together([(n.files, n.marker) for n in nodes], timeout_s=45.0)
    for node, stopped in zip(nodes, stopped_nodes, strict=True):
        outcome[node.name] = "stopped" if stopped else "not running"
    return outcome
