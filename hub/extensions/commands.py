"""`run.py --ext NAME [ARG ...]`: the commands extensions add (hook `hub_commands`)."""

from __future__ import annotations

import sys

from hub.errors import HubError
from hub.extensions.api import Command
from hub.extensions.loader import ExtensionError, Extensions


def all_commands(extensions: Extensions) -> list[tuple[str, Command]]:
    out = []
    for ext in extensions:
        for c in extensions.call("hub_commands", ext) or []:
            if not isinstance(c, Command):
                raise ExtensionError(f"extension {ext.name}: hub_commands must return Command objects")
            out.append((ext.name, c))
    return out


def run(extensions: Extensions, argv: list[str]) -> int:
    commands = all_commands(extensions)
    if not argv:
        if not commands:
            print("no extension adds a command (EXTENSIONS, AUTOLOAD_EXTENSIONS)")
        for owner, c in commands:
            print(f"  run.py --ext {c.name:<24} {c.help}  [{owner}]")
        return 0
    name, args = argv[0], argv[1:]
    for ext_name, c in commands:
        if c.name == name:
            ext = extensions.named(ext_name)
            try:
                return int(c.run(ext, args) or 0)
            except HubError:
                raise
            except SystemExit as e:  # its own argparse: --help, or a usage error (2)
                return e.code if isinstance(e.code, int) else 2
            except Exception as e:  # noqa: BLE001 - say whose command failed
                raise HubError(f"extension {ext_name}: command {name} failed: {type(e).__name__}: {e}") from e
    known = ", ".join(c.name for _e, c in commands) or "none"
    print(f"error: no extension command {name!r} (known: {known}); run.py --ext lists them", file=sys.stderr)
    return 2
