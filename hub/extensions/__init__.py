"""Extensions: a lab's own behaviour without changing the hub's code (docs/extensions.md).

`hookimpl` marks an extension's hook functions (their names and arguments are those of
`hub.extensions.hookspecs`); `load(settings)` in `hub.extensions.loader` finds, imports
and checks them; thin call sites in the app factory, the notifier and `run.py` use them.
"""

from __future__ import annotations

import pluggy

from hub.extensions.api import Command, Extension, MessageContext, Panel, Setting
from hub.extensions.hookspecs import PROJECT

hookimpl = pluggy.HookimplMarker(PROJECT)

__all__ = ["Command", "Extension", "MessageContext", "Panel", "Setting", "hookimpl"]
