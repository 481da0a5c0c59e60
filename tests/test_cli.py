"""run.py's admin commands, run for real as a subprocess on SQLite and PostgreSQL."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from hub.settings import ROOT, Settings, load
from hub.storage import keys, resources, users
from hub.storage.db import Database
from tests.support import clean_env, write_settings_file

STRONG = "correct horse battery"


def run(settings_path: Path, *args: str, stdin: str | None = None,
        env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, str(ROOT / "run.py"), *args], capture_output=True, text=True,
                          input=stdin, timeout=60, env=env or clean_env(settings_path), cwd=ROOT)


@pytest.fixture
def cli(tmp_path: Path, database_url: str) -> tuple[Path, Settings]:
    path = write_settings_file(tmp_path / "config.py", {
        "DATA_DIR": str(tmp_path / "data"), "DATABASE_URL": database_url,
        "SECRET_KEY": "k" * 40, "PASSWORD_HASH_ROUNDS": 4})
    return path, load(path, env={})


def test_help_lists_every_command_and_setting(tmp_path: Path) -> None:
    out = run(tmp_path / "none.py", "--help").stdout
    for flag in ("--init-db", "--migrate", "--create-admin", "--create-org", "--create-key",
                 "--revoke-key", "--check", "--persister", "--http", "--broker", "--settings"):
        assert flag in out
    for name, _default, _help in Settings.help_rows():
        assert name in out


def test_admin_commands_end_to_end(cli: tuple[Path, Settings]) -> None:
    path, s = cli
    for _ in range(2):  # safe to run twice
        r = run(path, "--init-db")
        assert r.returncode == 0, r.stderr
        assert "database ready" in r.stdout
    assert "password" not in r.stdout

    r = run(path, "--create-admin", f"root@example.com:{STRONG}")
    assert r.returncode == 0, r.stderr
    r = run(path, "--create-admin", f"ROOT@example.com:{STRONG}")
    assert r.returncode == 2 and "already" in r.stderr
    r = run(path, "--create-admin", "weak@example.com:short")
    assert r.returncode == 2 and "at least" in r.stderr
    # no :PASSWORD -> prompted (twice); here the prompt reads the piped stdin
    r = run(path, "--create-admin", "typed@example.com", stdin=f"{STRONG}\n{STRONG}\n")
    assert r.returncode == 0, r.stderr
    assert STRONG not in r.stdout + r.stderr
    r = run(path, "--create-admin", "typo@example.com", stdin=f"{STRONG}\nsomething else\n")
    assert r.returncode == 2 and "differ" in r.stderr

    assert run(path, "--create-org", "acme").returncode == 0
    r = run(path, "--create-org", "acme")
    assert r.returncode == 2 and "exists" in r.stderr

    r = run(path, "--create-key", "--controller", "acme/greenhouse/pi-01")  # folders made as needed
    assert r.returncode == 0, r.stderr
    secret = r.stdout.strip().splitlines()[-1]
    r = run(path, "--create-key", "--controller", "nosuchorg/pi-01")
    assert r.returncode == 2 and "--create-org nosuchorg" in r.stderr
    r = run(path, "--create-key", "--user", "root@example.com")
    assert r.returncode == 0, r.stderr
    r = run(path, "--create-key", "--user", "nobody@example.com")
    assert r.returncode == 2 and "no user" in r.stderr
    r = run(path, "--create-key")
    assert r.returncode == 2 and "exactly one" in r.stderr

    db = Database(s.database_url)
    try:
        with db.session() as sess:
            assert users.authenticate(sess, "typed@example.com", STRONG).is_admin
            assert resources.get(sess, "acme/greenhouse").type == "folder"
            assert resources.get(sess, "acme/greenhouse/pi-01").type == "controller"
            row = keys.verify(sess, secret)
            prefix = row.prefix
        r = run(path, "--revoke-key", prefix)
        assert r.returncode == 0, r.stderr
        with db.session() as sess, pytest.raises(Exception, match="revoked"):
            keys.verify(sess, secret)
    finally:
        db.dispose()


def test_environment_overrides_the_database(tmp_path: Path, pg_database_url: str) -> None:
    """`HUB_DATABASE_URL` alone points run.py at PostgreSQL."""
    path = write_settings_file(tmp_path / "config.py", {"DATA_DIR": str(tmp_path / "d"), "SECRET_KEY": "k" * 40,
                                                        "PASSWORD_HASH_ROUNDS": 4})
    env = clean_env(path, HUB_DATABASE_URL=f"'{pg_database_url}'")
    assert run(path, "--init-db", env=env).returncode == 0
    r = run(path, "--create-admin", f"a@b.co:{STRONG}", env=env)
    assert r.returncode == 0, r.stderr
    assert not (tmp_path / "d" / "hub.db").exists()
