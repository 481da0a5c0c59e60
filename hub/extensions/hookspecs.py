"""Every hook an extension may implement, in one place.

An extension is a Python package (importable, or a folder under EXTENSIONS_DIR) whose
top-level module holds functions decorated with `hub.extensions.hookimpl` named after
these specifications. pluggy checks each against its specification when the extension
is registered: an unknown hook name, or an argument the specification does not name,
stops the hub at start-up with the extension's name.

Each hook but `hub_settings` gets `ext`, the extension's own `Extension` (its name,
folder and settings' values). See docs/extensions.md.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING

import pluggy

if TYPE_CHECKING:
    from aiohttp import web

    from hub.extensions.api import Command, Extension, MessageHandler, Panel, Setting

PROJECT = "hub"
hookspec = pluggy.HookspecMarker(PROJECT)


@hookspec
def hub_settings() -> list[Setting]:  # type: ignore[empty-body]
    """The extension's own settings: names starting with its name in capitals and `_`
    (THRESHOLD_ALERTS_RULES for threshold_alerts), each with a default and help text.
    Their values come from the settings file or the environment like the hub's own."""


@hookspec
def hub_check(ext: Extension) -> None:
    """Check the extension's settings' values (`ext.settings`) at start-up; raise
    `hub.errors.SettingsError` (or any error) to stop the hub with a message."""


@hookspec
def hub_routes(ext: Extension) -> web.RouteTableDef:  # type: ignore[empty-body]
    """HTTP routes, with paths relative to the extension's prefix `/ext/<name>`.
    Handlers authenticate with `hub.extensions.web.caller_of` and check the access rule
    with `require_level`; a route that calls neither is public. Listed in
    `/ext/<name>/openapi.json`."""


@hookspec
def hub_static(ext: Extension) -> Path | str:  # type: ignore[empty-body]
    """A folder served at `/ext/<name>/static/` (public, like the console's files)."""


@hookspec
def hub_console_panels(ext: Extension) -> list[Panel]:  # type: ignore[empty-body]
    """Pages (in the extension's static folder) the console links to in its top bar."""


@hookspec
def hub_message_handlers(ext: Extension) -> Mapping[str, MessageHandler]:  # type: ignore[empty-body]
    """Message type -> handler, called in the notifier's process on a thread of its own
    (never the broker's, never paho's) for every message of that type on any topic.
    Whatever a handler publishes goes out with the extension's API key
    (EXTENSION_API_KEYS), so the broker's access rule applies to it."""


@hookspec
def hub_commands(ext: Extension) -> list[Command]:  # type: ignore[empty-body]
    """Commands for `run.py --ext NAME [ARG ...]`."""
