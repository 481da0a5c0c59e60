"""`run.py`: admin commands, and with no command, the whole hub.

Each command is a thin call into the storage layer; errors print one line
that says what to do and exit with status 2.
"""

from __future__ import annotations

import argparse
import getpass
import logging
import os
import sys
from collections.abc import Callable

from hub import settings as settings_mod
from hub.errors import HubError
from hub.settings import Settings

log = logging.getLogger("hub")


def _settings_epilog() -> str:
    rows = [f"  {name:<24} default {default!r}\n      {help}" for name, default, help in Settings.help_rows()]
    return ("settings (in settings/config.py, or the environment as NAME or HUB_NAME, values as YAML):\n"
            + "\n".join(rows))


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="run.py", formatter_class=argparse.RawDescriptionHelpFormatter,
        description="The hub. With no command: start Mosquitto (with the auth plugin), the persister, the notifier "
                    "and the HTTP server; restart a part that exits unexpectedly (2 s, doubling; at most 5 restarts "
                    "in 120 s, then stop all; DATA_DIR/supervisor.json and /health show it); stop them all on "
                    "Ctrl-C / SIGTERM.",
        epilog=_settings_epilog())
    g = p.add_argument_group("database")
    g.add_argument("--init-db", action="store_true", help="create or upgrade the database schema (safe to repeat)")
    g.add_argument("--migrate", action="store_true", help="same as --init-db: apply pending migrations")
    g = p.add_argument_group("admin")
    g.add_argument("--create-admin", metavar="EMAIL[:PASSWORD]",
                   help="create a system admin; without :PASSWORD, prompt for it (hidden)")
    g.add_argument("--create-org", metavar="NAME", help="create an organization and its top folder")
    g.add_argument("--create-key", action="store_true",
                   help="create an API key for --user EMAIL or --controller PATH; prints the secret once")
    g.add_argument("--user", metavar="EMAIL", help="the user for --create-key")
    g.add_argument("--controller", metavar="PATH",
                   help="the controller folder for --create-key (created, with any missing folders, "
                        "inside an existing organization)")
    g.add_argument("--import-key", metavar="KEY",
                   help="store an existing rhizo-server key (prefix + 50 characters) for --user EMAIL or "
                        "--controller PATH, so devices holding it keep working")
    g.add_argument("--revoke-key", metavar="PREFIX", help="revoke the key with this prefix")
    g.add_argument("--export", nargs=2, metavar=("ORG", "PATH"),
                   help="write organization ORG's resources with full history (bulk values included) to "
                        "PATH, JSON lines (.gz: compressed; -: stdout); progress on stderr")
    g.add_argument("--import", dest="import_path", metavar="PATH",
                   help="create the organization in an export file (from --export) with its history")
    g.add_argument("--import-rhizo", metavar="DATABASE_URL",
                   help="bring a rhizo-server installation over: its users, organizations, folders, controllers, "
                        "sequences, files, full history, permissions and keys, from its PostgreSQL or SQLite database "
                        "(postgresql://user:password@host/db, sqlite:////path/rhizo.db); safe to repeat; "
                        "progress on stderr")
    g.add_argument("--bulk", metavar="S3_URL",
                   help="with --import-rhizo: rhizo-server's bulk storage for its large values (s3://BUCKET, "
                        "its S3_STORAGE_BUCKET; S3_ENDPOINT_URL / S3_REGION and the usual AWS credentials apply)")
    g.add_argument("--check-rhizo-key", metavar="KEY",
                   help="say whether rhizo-server key KEY matches under RHIZO_SALT (rc 2 if not): against the "
                        "hub's imported keys, or with --import-rhizo against its source first (a mismatch stops it)")
    g = p.add_argument_group("processes")
    g.add_argument("--persister", action="store_true", help="run only the persister daemon")
    g.add_argument("--notifier", action="store_true",
                   help="run only the notifier (send_email, send_text_message, controller status, watchdog)")
    g.add_argument("--http", action="store_true", help="run only the HTTP server")
    g.add_argument("--broker", action="store_true",
                   help="run only the broker: Mosquitto with the hub's plugin or, with BROKER=rabbitmq, the local "
                        "RabbitMQ cluster (RABBITMQ_LOCAL) and the hub's queues")
    g.add_argument("--broker-auth", action="store_true",
                   help="with BROKER=rabbitmq: run only the broker-auth service the RabbitMQ nodes ask")
    g.add_argument("--check", action="store_true",
                   help="check settings, database, bulk storage and broker; say what is wrong")
    p.add_argument("--ext", nargs=argparse.REMAINDER, metavar="NAME ARG",
                   help="run a command an extension adds (docs/extensions.md); --ext alone lists them")
    p.add_argument("--settings", metavar="FILE", help="settings file (default settings/config.py or $HUB_SETTINGS)")
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        if args.settings:
            os.environ[settings_mod.ENV_PREFIX + "SETTINGS"] = args.settings
        s = settings_mod.load()
        logging.basicConfig(level=getattr(logging, s.LOG_LEVEL.upper(), logging.INFO),
                            format="%(asctime)s %(name)s %(levelname)s %(message)s")
        logging.getLogger("alembic").setLevel(logging.WARNING)
        from hub.extensions import commands, loader

        extensions = loader.of(s)  # one that fails to load stops everything here, before any part starts
        if args.ext is not None:
            return commands.run(extensions, args.ext)
        return _dispatch(args, s)
    except HubError as e:
        print(f"error: {e.message}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130


def _dispatch(args: argparse.Namespace, s: Settings) -> int:
    from hub import admin

    commands: list[tuple[bool, Callable[[], int]]] = [
        (args.init_db or args.migrate, lambda: admin.init_db(s)),
        (bool(args.create_org), lambda: admin.create_org(s, args.create_org)),
        (bool(args.create_admin), lambda: admin.create_admin(s, *_email_password(args.create_admin))),
        (args.create_key, lambda: admin.create_key(s, user=args.user, controller=args.controller)),
        (bool(args.import_key), lambda: admin.import_key(s, args.import_key, user=args.user,
                                                         controller=args.controller)),
        (bool(args.revoke_key), lambda: admin.revoke_key(s, args.revoke_key)),
        (bool(args.export), lambda: admin.export_org(s, *args.export)),
        (bool(args.import_path), lambda: admin.import_org(s, args.import_path)),
        (bool(args.check_rhizo_key), lambda: admin.check_rhizo_key(s, args.check_rhizo_key, args.import_rhizo or "")),
        (bool(args.import_rhizo), lambda: admin.import_rhizo(s, args.import_rhizo, args.bulk or "")),
        (args.check, lambda: admin.check(s)),
    ]
    if args.bulk and not args.import_rhizo:
        raise HubError("--bulk goes with --import-rhizo (rhizo-server's bulk storage)")
    chosen = [fn for wanted, fn in commands if wanted]
    for fn in chosen:
        rc = fn()
        if rc:
            return rc
    if chosen:
        return 0
    from hub import supervisor

    if args.persister:
        return supervisor.run_one(s, "persister")
    if args.notifier:
        return supervisor.run_one(s, "notifier")
    if args.http:
        return supervisor.run_one(s, "http")
    if args.broker:
        return supervisor.run_one(s, "broker")
    if args.broker_auth:
        return supervisor.run_one(s, "broker-auth")
    return supervisor.run_all(s)


def _email_password(value: str) -> tuple[str, str]:
    email, sep, password = value.partition(":")
    if not sep:
        password = getpass.getpass(f"password for {email}: ")
        if password != getpass.getpass("again: "):
            raise HubError("the two passwords differ; nothing was created")
    return email, password
