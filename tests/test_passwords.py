"""Passwords of any length (bcrypt reads 72 bytes: the hub hashes SHA-256 of the password
first), the older hash form still checked, and log-in by email or user name."""

from __future__ import annotations

import bcrypt
import pytest

from hub.errors import BadRequest, Conflict, Unauthenticated, Unprocessable
from hub.rhizo_import import keys as rhizo_keys
from hub.storage import users
from hub.storage.db import Database
from tests.support.rhizo_db import SALT, bcrypt_inner

LONG = "a long pass phrase, " * 5  # 100 bytes
assert len(LONG.encode()) == 100


def test_a_100_byte_password_is_set_and_logs_in(db: Database) -> None:
    with db.session() as s:
        u = users.create_user(s, "long@example.com", LONG, rounds=4, user_name="Long.One")
        assert u.password_hash.startswith(users.PREHASHED) and u.user_name == "long.one"
    with db.session() as s:
        assert users.authenticate(s, "long@example.com", LONG).email == "long@example.com"
        assert users.authenticate(s, "LONG.one", LONG).email == "long@example.com"  # by user name
        for wrong in (LONG[:72], LONG[:-1], LONG + "x"):  # no cut at 72 bytes: every byte counts
            with pytest.raises(Unauthenticated):
                users.authenticate(s, "long@example.com", wrong)
        u = users.find_user_for_login(s, "long.one")
        assert u is not None
        with pytest.raises(Unprocessable):  # 600 characters, 1200 bytes: over the bound
            users.set_password(s, u, "ü" * 600, rounds=4, min_length=10)
    with db.session() as s:
        assert users.authenticate(s, "long.one", LONG) is not None


def test_a_password_over_the_bound_is_refused_and_a_long_new_one_is_set(db: Database) -> None:
    with db.session() as s:
        u = users.create_user(s, "b@example.com", "correct horse battery", rounds=4)
        with pytest.raises(BadRequest):
            users.set_password(s, u, "x1y2" * 300, rounds=4, min_length=10)
        users.set_password(s, u, LONG * 3, rounds=4, min_length=10)  # 300 bytes
    with db.session() as s:
        assert users.authenticate(s, "b@example.com", LONG * 3) is not None


def test_the_older_hash_form_still_logs_in(db: Database) -> None:
    with db.session() as s:
        u = users.create_user(s, "old@example.com", "correct horse battery", rounds=4)
        u.password_hash = bcrypt.hashpw(b"correct horse battery", bcrypt.gensalt(4)).decode()
    with db.session() as s:
        assert users.authenticate(s, "old@example.com", "correct horse battery") is not None
        with pytest.raises(Unauthenticated):
            users.authenticate(s, "old@example.com", "correct horse battery" + "x" * 80)
        assert not users.password_ok("$2b$damaged", "anything")  # no 500 on a damaged hash


def test_an_imported_rhizo_password_of_100_bytes_logs_in_and_is_rehashed(db: Database) -> None:
    with db.session() as s:
        u = users.create_user(s, "rz@example.com", "correct horse battery", rounds=4)
        u.password_hash = rhizo_keys.stored_password(bcrypt_inner(LONG))
    with db.session() as s:
        assert users.authenticate(s, "rz@example.com", LONG, rhizo_salt=SALT, rounds=4) is not None
    with db.session() as s:
        u = users.find_user_for_login(s, "rz@example.com")
        assert u is not None and u.password_hash.startswith(users.PREHASHED)
        assert users.authenticate(s, "rz@example.com", LONG) is not None


def test_user_names_are_validated_unique_and_freed_on_delete(db: Database) -> None:
    with db.session() as s:
        a = users.create_user(s, "a@example.com", "correct horse battery", rounds=4, user_name="ada")
        for bad in ("", "a@b", "-x", "x" * 51, "with space"):
            with pytest.raises(BadRequest):
                users.normalize_user_name(bad)
        with pytest.raises(Conflict):
            users.create_user(s, "b@example.com", "correct horse battery", rounds=4, user_name="ADA")
        users.delete_user(s, a.id)
        b = users.create_user(s, "b@example.com", "correct horse battery", rounds=4, user_name="ada")
        assert b.user_name == "ada"
