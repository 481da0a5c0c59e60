"""`python -m hub.controller --provision URL --key-file PATH`: get this controller's key
with a PIN instead of typing a 50-character secret on it.

1. Ask the hub for a PIN (`POST URL/api/v1/pins`); print it.
2. Someone with write access attaches it to a controller folder in the console (or
   `PUT /api/v1/pins/{pin}` `{"controller": "acme/site/pi-01"}`).
3. Meanwhile poll `GET /api/v1/pins/{pin}?pin_code=...` until the key comes (once),
   and write it to PATH with mode 0600 (the folder's path is printed and returned).

Stdlib only (urllib), like the rest of the controller client.
"""

from __future__ import annotations

import json
import os
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

from hub.errors import HubError

POLL_SECONDS = 3.0
TIMEOUT = 15.0


class ProvisionFailed(HubError):
    code = "provision_failed"


def _call(method: str, url: str, context: Any = None) -> tuple[int, dict[str, Any]]:
    req = urllib.request.Request(url, method=method, headers={"Accept": "application/json",
                                                              "User-Agent": "hub-controller"})
    try:
        with urllib.request.urlopen(req, timeout=TIMEOUT, context=context) as resp:  # noqa: S310
            return resp.status, json.loads(resp.read() or b"{}")
    except urllib.error.HTTPError as e:
        try:
            body = json.loads(e.read() or b"{}")
        except ValueError:
            body = {}
        return e.code, body
    except (urllib.error.URLError, OSError) as e:
        raise ProvisionFailed(f"cannot reach the hub at {url.split('/api/')[0]}: "
                              f"{getattr(e, 'reason', e)}") from None


def _message(body: dict[str, Any]) -> str:
    err = body.get("error")
    return str(err.get("message")) if isinstance(err, dict) else json.dumps(body)[:200]


def save_key(path: Path, key: str) -> None:
    """Write the key to `path`, readable by its owner only (0600), replacing any old one."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        os.fchmod(fd, 0o600)
        os.write(fd, (key + "\n").encode())
    finally:
        os.close(fd)
    os.replace(tmp, path)


def provision(base_url: str, key_file: Path, *, say: Callable[[str], None] = print,
              poll_seconds: float = POLL_SECONDS, context: Any = None) -> str:
    """Run the PIN flow against the hub at `base_url`; returns the controller's folder."""
    api = base_url.rstrip("/") + "/api/v1/pins"
    status, body = _call("POST", api, context)
    if status != 201:
        raise ProvisionFailed(f"the hub refused a PIN ({status}): {_message(body)}")
    pin, code = body["pin"], body["pin_code"]
    say(f"PIN {pin}: attach it to this controller's folder in the hub's console (or PUT {api}/{pin} "
        f"with {{\"controller\": \"org/folder/name\"}}) before {body.get('expires_at', 'it expires')}")
    poll = f"{api}/{urllib.parse.quote(pin)}?{urllib.parse.urlencode({'pin_code': code})}"
    while True:
        status, body = _call("GET", poll, context)
        if status == 200 and body.get("status") == "ready":
            save_key(key_file, body["key"])
            say(f"provisioned as {body['controller']}; key saved to {key_file} (mode 0600)")
            return str(body["controller"])
        if status == 200:
            time.sleep(poll_seconds)
            continue
        if status == 429:
            time.sleep(max(poll_seconds, 10.0))
            continue
        raise ProvisionFailed(f"provisioning stopped ({status}): {_message(body)}")


def read_key(path: Path) -> str:
    try:
        key = path.read_text().strip()
    except OSError as e:
        raise ProvisionFailed(f"cannot read the key file {path}: {e.strerror}; provision first "
                              "(--provision URL --key-file PATH)") from None
    if not key:
        raise ProvisionFailed(f"the key file {path} is empty; provision again")
    return key
