"""Liveness and readiness of a worker, apart. Pure (the clock is injected).

- **Liveness** answers "should this process be restarted?": no agent crashed, no
  stage is stuck on something it cannot get past by waiting, the event loop turns,
  and no batch has run far longer than any wait it is allowed.
- **Readiness** answers "is it doing its work now?": it is started, live, and not
  waiting on a dependency (Kafka, Weaviate, the LLM). Waiting out an outage is not a
  reason to restart, so it never makes the worker unlive.

The stages and the worker write here from the event loop; the health endpoint reads
from its own thread (plain attribute reads of immutable values).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field


@dataclass(frozen=True)
class Verdict:
    ok: bool
    problems: dict[str, str]


@dataclass
class Health:
    clock: Callable[[], float] = time.monotonic
    # the event loop's heartbeat may lag this long before the process counts as hung
    loop_stall_s: float = 30.0
    # a batch may run this long outside of a dependency wait before it counts as wedged
    batch_stall_s: float = 300.0
    started: bool = False
    crashed: dict[str, str] = field(default_factory=dict)
    stuck: dict[str, str] = field(default_factory=dict)
    waiting: dict[str, str] = field(default_factory=dict)
    dependencies: dict[str, str] = field(default_factory=dict)  # name -> error (down ones)
    busy_since: dict[str, float] = field(default_factory=dict)
    heartbeat: float = field(default=0.0)

    def __post_init__(self) -> None:
        self.heartbeat = self.clock()

    def beat(self) -> None:
        self.heartbeat = self.clock()

    def agent_crashed(self, agent: str, exc: BaseException) -> None:
        self.crashed = {**self.crashed, agent: f"{type(exc).__name__}: {str(exc)[:200]}"}

    def set_stuck(self, what: str, why: str | None) -> None:
        rest = {k: v for k, v in self.stuck.items() if k != what}
        self.stuck = rest if why is None else {**rest, what: why[:300]}

    def set_waiting(self, operation: str, error: str | None) -> None:
        rest = {k: v for k, v in self.waiting.items() if k != operation}
        self.waiting = rest if error is None else {**rest, operation: error[:300]}

    def set_dependency(self, name: str, error: str | None) -> None:
        rest = {k: v for k, v in self.dependencies.items() if k != name}
        self.dependencies = rest if error is None else {**rest, name: error[:300]}

    def batch_started(self, stage: str) -> None:
        self.busy_since = {**self.busy_since, stage: self.clock()}

    def batch_done(self, stage: str) -> None:
        self.busy_since = {k: v for k, v in self.busy_since.items() if k != stage}

    def liveness(self) -> Verdict:
        now = self.clock()
        problems = {f"crashed:{k}": v for k, v in self.crashed.items()}
        problems |= {f"stuck:{k}": v for k, v in self.stuck.items()}
        if now - self.heartbeat > self.loop_stall_s:
            problems["event_loop"] = f"no heartbeat for {now - self.heartbeat:.0f}s"
        if not self.waiting:
            for stage, since in self.busy_since.items():
                if now - since > self.batch_stall_s:
                    problems[f"wedged:{stage}"] = f"batch running for {now - since:.0f}s"
        return Verdict(not problems, problems)

    def readiness(self) -> Verdict:
        live = self.liveness()
        problems = dict(live.problems)
        if not self.started:
            problems["starting"] = "the worker has not joined its consumer group yet"
        problems |= {f"waiting:{k}": v for k, v in self.waiting.items()}
        problems |= {f"dependency:{k}": v for k, v in self.dependencies.items()}
        return Verdict(not problems, problems)
