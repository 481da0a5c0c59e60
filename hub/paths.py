"""The one rule for resource paths (and so for MQTT topics).

A path is `segment/segment/...` with no leading or trailing slash. Each
segment is 1-100 characters of `[A-Za-z0-9_.-]`, not `.` or `..`; the whole
path is at most `MAX_PATH_LENGTH` characters. A leading slash is accepted on
input and dropped.
"""

from __future__ import annotations

import re

from hub.errors import BadPath

MAX_PATH_LENGTH = 500
MAX_SEGMENT_LENGTH = 100
MAX_DEPTH = 20
_SEGMENT = re.compile(rf"[A-Za-z0-9_.\-]{{1,{MAX_SEGMENT_LENGTH}}}")
# The same rules as regular expressions, for the OpenAPI document: a segment not `.` or `..`.
_SEG = (r"(?:[A-Za-z0-9_-][A-Za-z0-9_.-]{0,99}|\.[A-Za-z0-9_-][A-Za-z0-9_.-]{0,98}"
        r"|\.\.[A-Za-z0-9_.-]{1,98})")
SEGMENT_PATTERN = rf"^{_SEG}$"
PATH_PATTERN = rf"^/?{_SEG}(?:/{_SEG}){{0,{MAX_DEPTH - 1}}}$"  # plus at most MAX_PATH_LENGTH characters
SUBPATH_PATTERN = rf"^/?{_SEG}(?:/{_SEG}){{1,{MAX_DEPTH - 1}}}$"  # inside an organization: two or more
URL_PATH_PATTERN = rf"^{_SEG}(?:/{_SEG}){{0,{MAX_DEPTH - 1}}}$"  # in a URL, after the route's own slash


def check_segment(name: str) -> str:
    if not isinstance(name, str) or not _SEGMENT.fullmatch(name) or name in (".", ".."):
        raise BadPath(
            f"bad name {name!r}: use 1-{MAX_SEGMENT_LENGTH} of letters, digits, '_', '.', '-' "
            "(not '.' or '..')"
        )
    return name


def check_folder_name(name: str, dotless: bool) -> str:
    """A folder's name is a topic level. On RabbitMQ (`dotless`) a topic's `/` becomes `.` in
    its routing key, so `a/v1.2` and `a/v1/2` would be one topic: no `.` there."""
    check_segment(name)
    if dotless and "." in name:
        raise BadPath(f"bad folder name {name!r}: this hub runs on RabbitMQ, where '.' separates topic "
                      "levels; use '_' or '-' instead")
    return name


def normalize(path: str) -> str:
    """Return the canonical form of `path` or raise `BadPath`."""
    if not isinstance(path, str):
        raise BadPath("path must be a string")
    p = path[1:] if path.startswith("/") else path
    if not p:
        raise BadPath("empty path")
    if len(p) > MAX_PATH_LENGTH:
        raise BadPath(f"path longer than {MAX_PATH_LENGTH} characters")
    parts = p.split("/")
    if len(parts) > MAX_DEPTH:
        raise BadPath(f"path deeper than {MAX_DEPTH} levels")
    for part in parts:
        if part == "":
            raise BadPath(f"empty segment in path {path!r}")
        check_segment(part)
    return p


def split(path: str) -> tuple[str | None, str]:
    """`a/b/c` -> (`a/b`, `c`); `a` -> (None, `a`)."""
    p = normalize(path)
    if "/" not in p:
        return None, p
    parent, name = p.rsplit("/", 1)
    return parent, name


def ancestors(path: str) -> list[str]:
    """`a/b/c` -> [`a`, `a/b`, `a/b/c`] (the path itself last)."""
    parts = normalize(path).split("/")
    return ["/".join(parts[: i + 1]) for i in range(len(parts))]


def is_within(path: str, folder: str) -> bool:
    """True when `path` is `folder` or below it (both canonical)."""
    return path == folder or path.startswith(folder + "/")


def join(folder: str, relative: str) -> str:
    """Resolve a sequence name or relative path against `folder`.

    An absolute path (leading `/`) is taken as is; the caller decides whether
    it must stay inside `folder`.
    """
    if not isinstance(relative, str):
        raise BadPath("path must be a string")
    if relative.startswith("/"):
        return normalize(relative)
    return normalize(f"{normalize(folder)}/{relative}")
