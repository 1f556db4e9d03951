"""What every process of the local stack is: its files, its command line, its health
check. The processes themselves live in kafka_node.py and components.py."""

from __future__ import annotations

from abc import ABC, abstractmethod

from streams.settings import Settings
from streams.stack.build import Artifacts
from streams.stack.process import ProcessFiles


class Component(ABC):
    """One stack process: its files, its command line and its health check."""

    name: str

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.home = settings.stack_dir / self.name
        self.files = ProcessFiles(
            pid_file=settings.stack_dir / "pids" / f"{self.name}.pid",
            log_file=settings.stack_dir / "logs" / self.name / f"{self.name}.log",
        )

    @property
    @abstractmethod
    def port(self) -> int: ...

    @property
    @abstractmethod
    def marker(self) -> str:
        """A string in the process' command line that proves it is ours."""

    @abstractmethod
    def prepare(self, artifacts: Artifacts) -> None:
        """Write configs and one-off initial state before a start."""

    @abstractmethod
    def argv(self, artifacts: Artifacts) -> list[str]: ...

    def env(self) -> dict[str, str]:
        return {}

    def refresh(self) -> None:
        """Bring an instance that runs already (ours, reused) up to date with its config."""
        return

    @abstractmethod
    def healthy(self) -> bool: ...
