"""Threshold alerts: an email when a sequence's value leaves the range a rule gives it.

Settings (in the hub's settings file, or this folder's autoload-config.py):

    THRESHOLD_ALERTS_RULES = [
        {"sequence": "acme/greenhouse/pi-01/temperature", "min": 5, "max": 35,
         "to": ["grower@acme.org"]},
    ]
    EXTENSION_API_KEYS = {"threshold_alerts": "<an API key with write on acme/greenhouse>"}

It handles `update_sequence` messages in the notifier's process and publishes a
`send_email` message to the folder the value came on, with its own API key: the broker
checks that key's write access, and the notifier sends the email through its SMTP path
(recipients must be users of the folder's organization; the hourly limit applies).
`GET /ext/threshold_alerts/rules` lists the rules on sequences the caller may read;
the console links to its panel. `run.py --ext threshold-alerts-check` checks the rules.
"""

from __future__ import annotations

from pathlib import Path

from aiohttp import web

from hub import wire
from hub.errors import HubError
from hub.extensions import Command, Extension, MessageContext, Panel, Setting, hookimpl

from . import rules as rules_mod

__version__ = "1.0"
HERE = Path(__file__).resolve().parent


def _rules(ext: Extension) -> list[rules_mod.Rule]:
    return rules_mod.parse(ext.settings[rules_mod.SETTING])


@hookimpl
def hub_settings() -> list[Setting]:
    return [Setting(rules_mod.SETTING, [], "Threshold rules: a list of {'sequence': PATH, 'min': N, 'max': N, "
                                           "'to': [EMAIL, ...]} (min or max may be left out). An email goes to "
                                           "'to' when a value leaves the range; one per excursion.")]


@hookimpl
def hub_check(ext: Extension) -> None:
    _rules(ext)


@hookimpl
def hub_routes(ext: Extension) -> web.RouteTableDef:
    from hub.extensions import web as ext_web

    routes = web.RouteTableDef()

    @routes.get("/rules")
    async def list_rules(request: web.Request) -> web.Response:
        """The threshold rules on sequences the caller may read.

        Needs a log-in or an API key; rules on sequences the caller cannot read are left out."""
        caller = await ext_web.caller_of(request)
        visible = []
        for rule in _rules(ext):
            if await ext_web.level_of(request, caller, rule.sequence) >= ext_web.Level.READ:
                visible.append(rule.as_json())
        return web.json_response({"rules": visible})

    return routes


@hookimpl
def hub_static(ext: Extension) -> Path:
    return HERE / "static"


@hookimpl
def hub_console_panels(ext: Extension) -> list[Panel]:
    return [Panel("Threshold alerts", "index.html")]


@hookimpl
def hub_message_handlers(ext: Extension) -> dict[str, object]:
    watch = rules_mod.Watch(_rules(ext))  # one per notifier: what is out of range now

    def on_update(ctx: MessageContext, topic: str, msg: wire.Message) -> None:
        try:
            folder = wire.folder_of_topic(topic)
            updates = wire.updates(folder, msg.parameters)
        except HubError:
            return  # the persister logs and keeps bad messages
        for u in updates:
            for rule in watch.crossings(u.path, u.value):
                ctx.send_email(folder, list(rule.to), f"[hub] {rule.sequence} is out of range",
                               f"{rule.sequence} is {u.value!r}, outside {rule.describe()}"
                               f"{' at ' + str(u.timestamp) if u.timestamp is not None else ''}.\n\n"
                               "You will hear again when it leaves the range after coming back.\n")

    return {wire.UPDATE_SEQUENCE: on_update}


@hookimpl
def hub_commands(ext: Extension) -> list[Command]:
    def check(e: Extension, args: list[str]) -> int:
        for rule in _rules(e):
            print(f"{rule.sequence} {rule.describe()} -> {', '.join(rule.to)}")
        return 0

    return [Command("threshold-alerts-check", "check and list the threshold rules", check)]
