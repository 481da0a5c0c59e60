"""A throw-away PostgreSQL cluster on a free loopback port.

PostgreSQL refuses to run as root. When the tests run as root (as CI does), the
cluster's commands run as the system user `hubtest` (created once with
`useradd --system`), which owns the cluster's temporary folder; the folder is
under /tmp, not under pytest's tmp_path (that one is 0700 root).
"""

from __future__ import annotations

import os
import pwd
import re
import shutil
import subprocess
import tempfile
from pathlib import Path

import psycopg
from psycopg import sql

PG_GLOB_ROOT = Path("/usr/lib/postgresql")
RUN_AS = "hubtest"


def find_pg_bindir() -> Path | None:
    """The highest-version `/usr/lib/postgresql/*/bin` with initdb and pg_ctl, or PATH's."""

    def version(p: Path) -> tuple[int, ...]:
        return tuple(int(x) for x in re.findall(r"\d+", p.parent.name)) or (0,)

    candidates = sorted(PG_GLOB_ROOT.glob("*/bin"), key=version, reverse=True)
    on_path = shutil.which("pg_ctl")
    if on_path:
        candidates.append(Path(on_path).parent)
    for d in candidates:
        if (d / "initdb").is_file() and (d / "pg_ctl").is_file():
            return d
    return None


def ensure_system_user(name: str = RUN_AS) -> pwd.struct_passwd:
    try:
        return pwd.getpwnam(name)
    except KeyError:
        pass
    r = subprocess.run(
        ["useradd", "--system", "--no-create-home", "--shell", "/usr/sbin/nologin", name],
        stdin=subprocess.DEVNULL, capture_output=True, text=True,
    )
    try:  # a concurrent run may have created it: look again either way
        return pwd.getpwnam(name)
    except KeyError:
        raise RuntimeError(f"cannot create system user {name}: {r.stderr.strip()}") from None


class PgCluster:
    """initdb'd data folder, `-A trust`, superuser `postgres`, fsync off."""

    def __init__(self, bindir: Path, port: int) -> None:
        self.bindir = bindir
        self.port = port
        self.user = ensure_system_user() if os.geteuid() == 0 else None
        self.root = Path(tempfile.mkdtemp(prefix="hub-pg-"))
        if self.user is not None:
            os.chown(self.root, self.user.pw_uid, self.user.pw_gid)
        self.datadir = self.root / "data"
        self.sockdir = self.root / "sock"
        self.logfile = self.root / "postgres.log"

    # -- running pg commands as the right user -------------------------------
    def _run(self, *args: str, check: bool = True, timeout: float = 120) -> subprocess.CompletedProcess[str]:
        kw: dict[str, object] = {}
        env = {k: v for k, v in os.environ.items() if not k.startswith("PG")}
        env["LC_ALL"] = "C"
        if self.user is not None:
            kw = {"user": self.user.pw_uid, "group": self.user.pw_gid, "extra_groups": []}
            env["HOME"] = str(self.root)
        r = subprocess.run(
            [str(self.bindir / args[0]), *args[1:]], cwd=self.root, env=env, stdin=subprocess.DEVNULL,
            capture_output=True, text=True, timeout=timeout, **kw,  # type: ignore[call-overload]
        )
        if check and r.returncode != 0:
            raise RuntimeError(
                f"{' '.join(args)} failed ({r.returncode}):\n{r.stdout}{r.stderr}\n--- log ---\n{self.log_tail()}"
            )
        return r  # type: ignore[no-any-return]

    def log_tail(self, lines: int = 30) -> str:
        try:
            return "\n".join(self.logfile.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no log)"

    # -- life cycle ----------------------------------------------------------
    def init(self) -> None:
        self._run("initdb", "-D", str(self.datadir), "-U", "postgres", "-A", "trust",
                  "-E", "UTF8", "--locale=C", "--no-sync")
        if self.user is not None:  # the socket dir must be the cluster owner's
            self.sockdir.mkdir()
            os.chown(self.sockdir, self.user.pw_uid, self.user.pw_gid)
        else:
            self.sockdir.mkdir()
        with open(self.datadir / "postgresql.conf", "a") as f:
            f.write(
                "\n# hub tests\n"
                "listen_addresses = '127.0.0.1'\n"
                f"port = {self.port}\n"
                f"unix_socket_directories = '{self.sockdir}'\n"
                "fsync = off\nsynchronous_commit = off\nfull_page_writes = off\n"
                "max_connections = 200\n"
            )

    def is_running(self) -> bool:
        return self._run("pg_ctl", "-D", str(self.datadir), "status", check=False).returncode == 0

    def start(self) -> None:
        """Start the server and wait until it accepts connections (no-op if running)."""
        if not self.is_running():
            self._run("pg_ctl", "-D", str(self.datadir), "-l", str(self.logfile), "-w", "-t", "60", "start")

    def stop(self, mode: str = "fast") -> None:
        """Stop the server (no-op if stopped). `mode`: smart, fast or immediate."""
        if self.is_running():
            self._run("pg_ctl", "-D", str(self.datadir), "-m", mode, "-w", "-t", "60", "stop")

    def destroy(self) -> None:
        try:
            self.stop(mode="immediate")
        finally:
            shutil.rmtree(self.root, ignore_errors=True)

    # -- databases -----------------------------------------------------------
    def url(self, dbname: str = "postgres") -> str:
        return f"postgresql+psycopg://postgres@127.0.0.1:{self.port}/{dbname}"

    def connect(self, dbname: str = "postgres") -> psycopg.Connection[tuple[object, ...]]:
        return psycopg.connect(host="127.0.0.1", port=self.port, user="postgres", dbname=dbname,
                               autocommit=True, connect_timeout=10)

    def create_database(self, name: str) -> str:
        """CREATE DATABASE `name`; return its SQLAlchemy URL."""
        with self.connect() as c:
            c.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
        return self.url(name)

    def drop_database(self, name: str) -> None:
        """DROP DATABASE `name`, disconnecting whoever is still on it."""
        with self.connect() as c:
            c.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))
