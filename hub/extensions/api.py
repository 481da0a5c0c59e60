"""What extensions are handed and what they hand back: plain data, no behaviour of the hub's."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from hub import wire
    from hub.settings import Settings
    from hub.storage.store import Store


@dataclass(frozen=True)
class Setting:
    """One setting of an extension's own: `type(default)` is its type, as for the hub's."""

    name: str
    default: Any
    help: str


@dataclass(frozen=True)
class Panel:
    """A page of the extension's static folder (`page`, relative to it) that the console
    links to under `title`."""

    title: str
    page: str = "index.html"


@dataclass(frozen=True)
class Command:
    """`run.py --ext NAME [ARG ...]`: `run(ext, args)` returns the exit status."""

    name: str
    help: str
    run: Callable[[Extension, list[str]], int]


@dataclass
class Extension:
    """One loaded extension, as its hooks see it."""

    name: str
    module: ModuleType
    folder: Path | None
    hub_settings: Settings
    settings: dict[str, Any] = field(default_factory=dict)  # its own settings, by name

    @property
    def prefix(self) -> str:
        """Where its routes live: `/ext/<name>`."""
        return f"/ext/{self.name}"


class MessageContext(Protocol):
    """What a message handler may do besides reading its message."""

    ext: Extension
    store: Store

    def publish(self, folder: str, type: str, parameters: Mapping[str, Any]) -> None:
        """Publish `{"type", "parameters"}` to `folder` with the extension's API key (QoS 1);
        the broker refuses what that key may not write."""

    def send_email(self, folder: str, to: list[str], subject: str, body: str) -> None:
        """A `send_email` message to `folder`: the notifier sends it through its SMTP path,
        with its recipient rule and per-sender hourly limit."""


MessageHandler = Callable[["MessageContext", str, "wire.Message"], None]
