"""The install steps of docs/operations.md, run against this machine's own services in a
temporary prefix: a PostgreSQL cluster (the `pg_cluster` fixture) with the hub's role and
database, S3 (moto), the settings block of step 6, Mosquitto from
sample_settings/mosquitto.conf (TLS with a self-signed certificate, persistence, the
plugin), the HTTP server and a persister started with the ExecStart lines of the systemd
units, and Debian's nginx with sample_settings/nginx.conf on free ports. nginx and
Mosquitto run as child processes of the test with their configs in a temporary folder.

Then, as in production: `run.py --check` passes; HTTP redirects to HTTPS; a controller
connects over TLS; a browser-style client logs in over HTTPS, gets an MQTT token and talks
MQTT over wss through nginx; a value is stored and read back over HTTPS; a broker restart
loses no queued message.

Differences from a real install, each forced by the test machine: paths live under a
temporary folder, ports are free ones, the certificate is self-signed for `localhost`,
the broker keeps running as root (`user root`: the test's Python lives under /root,
which the mosquitto user cannot read; production uses Debian's Python, see the drop-in),
and the embedded Python's PYTHONHOME/PYTHONPATH are this venv's instead of /usr and
/opt/hub/.venv.
"""

from __future__ import annotations

import http.client
import json
import re
import secrets
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.cookiejar import CookieJar
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from hub.broker_auth import runner
from hub.controller import Controller
from hub.settings import ROOT
from tests.support import PgCluster, clean_env, free_port
from tests.support.processes import NOTIFIER_READY, PERSISTER_READY, log_size, wait_log
from tests.support.s3 import s3_client

pytestmark = [pytest.mark.pg, pytest.mark.slow,
              pytest.mark.skipif(shutil.which("nginx", path="/usr/sbin:/usr/bin") is None,
                                 reason="nginx is missing: `make setup` installs Debian's package")]

DOCS = ROOT / "docs" / "operations.md"
SAMPLES = ROOT / "sample_settings"
SYSTEMD = ROOT / "systemd"
ADMIN = ("admin@example.com", "correct horse battery")
CONTROLLER = "acme/pi-01"
START_TIMEOUT = 30.0


# -- rendering the documented files into the temporary prefix -------------------------
def render(text: str, subs: dict[str, str], what: str) -> str:
    """Replace each documented value; a value the sample no longer has fails the test."""
    for old, new in subs.items():
        assert old in text, f"{what} no longer contains {old!r}: update tests/test_deploy.py"
        text = text.replace(old, new)
    return text


def doc_step(number: int) -> str:
    """The text of step `number` of the install section of docs/operations.md."""
    text = DOCS.read_text()
    m = re.search(rf"^### {number}\. .*?(?=^### |^## )", text, re.M | re.S)
    assert m, f"docs/operations.md has no step {number}"
    return m.group(0)


def heredoc(step: str, target: str) -> str:
    m = re.search(rf"cat > {re.escape(target)} <<'?EOF'?\n(.*?)\nEOF\n", step, re.S)
    assert m, f"the step no longer writes {target} with a here-document"
    return m.group(1) + "\n"


def unit_exec(unit: str, instance: str = "") -> tuple[list[str], dict[str, str]]:
    """ExecStart and Environment of a unit, with /opt/hub replaced by this checkout."""
    argv: list[str] = []
    env: dict[str, str] = {}
    for line in (SYSTEMD / unit).read_text().splitlines():
        key, _, value = line.partition("=")
        value = value.replace("%i", instance).replace("%H", socket.gethostname())
        if key == "ExecStart":
            argv = value.split()
        elif key == "Environment":
            env.update(p.split("=", 1) for p in value.split())
    assert argv[:2] == ["/opt/hub/.venv/bin/python", "/opt/hub/run.py"], argv
    return [sys.executable, str(ROOT / "run.py"), *argv[2:]], env


# -- processes --------------------------------------------------------------------------
@dataclass
class Child:
    name: str
    argv: list[str]
    env: dict[str, str]
    log: Path
    ports: list[int] = field(default_factory=list)
    ready: str = ""  # the line its log shows once it does its job (e.g. after its SUBACK)
    proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        offset = log_size(self.log)
        with open(self.log, "ab") as out:
            self.proc = subprocess.Popen(self.argv, env=self.env, stdin=subprocess.DEVNULL, stdout=out,
                                         stderr=subprocess.STDOUT, cwd=ROOT)
        deadline = time.monotonic() + START_TIMEOUT
        for port in self.ports:
            while True:
                if self.proc.poll() is not None:
                    raise AssertionError(f"{self.name} exited with {self.proc.returncode}:\n{self.tail()}")
                try:
                    socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
                    break
                except OSError:
                    if time.monotonic() > deadline:
                        raise AssertionError(f"{self.name} did not open port {port}:\n{self.tail()}") from None
                    time.sleep(0.05)
        if self.ready and not wait_log(self.log, self.ready, max(0.0, deadline - time.monotonic()), offset,
                                       self.proc):
            raise AssertionError(f"{self.name} never logged {self.ready!r}:\n{self.tail()}")

    def stop(self) -> None:
        p, self.proc = self.proc, None
        if p is None or p.poll() is not None:
            return
        p.send_signal(signal.SIGTERM)
        try:
            p.wait(15)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait(5)

    def kill(self) -> None:
        """SIGKILL: a crash (systemd's Restart= would start it again)."""
        p, self.proc = self.proc, None
        if p is not None and p.poll() is None:
            p.kill()
            p.wait(5)

    def tail(self, n: int = 30) -> str:
        lines = self.log.read_text(errors="replace").splitlines() if self.log.exists() else []
        return "\n".join(lines[-n:]) or "(empty log)"


@dataclass
class Deployment:
    prefix: Path
    cert: Path
    settings: Path
    env: dict[str, str]
    http_port: int
    https_port: int
    mqtts_port: int
    controller_key: str
    children: dict[str, Child]

    @property
    def https(self) -> str:
        return f"https://localhost:{self.https_port}"

    def tls(self) -> ssl.SSLContext:
        return ssl.create_default_context(cafile=str(self.cert))


# -- the install steps ------------------------------------------------------------------
def _openssl_self_signed(certs: Path) -> Path:
    """Step 8 stand-in: a certificate for localhost, under Let's Encrypt's file names."""
    certs.mkdir(parents=True)
    subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
                    "-nodes", "-days", "2", "-subj", "/CN=localhost",
                    "-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1",
                    "-keyout", str(certs / "privkey.pem"), "-out", str(certs / "fullchain.pem")],
                   check=True, capture_output=True, timeout=30)
    return certs / "fullchain.pem"


def _database(pg: PgCluster) -> tuple[str, str, str]:
    """Step 4: a login role with a password, owning its database."""
    role, db, password = f"hub_{secrets.token_hex(4)}", f"hub_deploy_{secrets.token_hex(4)}", secrets.token_hex(12)
    with pg.connect() as c:
        c.execute(f"CREATE ROLE {role} LOGIN PASSWORD '{password}'")
        c.execute(f"CREATE DATABASE {db} OWNER {role} ENCODING 'UTF8'")
    return role, db, password


def _nginx(prefix: Path, certs: Path, http_port: int, ws_port: int, p80: int, p443: int) -> Child:
    """Step 11: the sample site inside a minimal main config, as Debian's nginx.conf includes it."""
    site = render((SAMPLES / "nginx.conf").read_text(), {
        "listen 80;": f"listen 127.0.0.1:{p80};", "listen [::]:80;\n": "",
        "listen 443 ssl http2;": f"listen 127.0.0.1:{p443} ssl http2;", "listen [::]:443 ssl http2;\n": "",
        "server_name hub.example.com;": "server_name localhost;",
        "server 127.0.0.1:8080;": f"server 127.0.0.1:{http_port};",
        "server 127.0.0.1:9001;": f"server 127.0.0.1:{ws_port};",
        "/etc/letsencrypt/live/hub.example.com/": f"{certs}/",
        "root /var/www/html;": f"root {prefix / 'www'};",
    }, "sample_settings/nginx.conf")
    (prefix / "www").mkdir()
    (prefix / "sites-enabled").mkdir()
    (prefix / "sites-enabled" / "hub").write_text(site)
    main = prefix / "nginx.conf"
    main.write_text(f"""
user www-data;
worker_processes 1;
pid {prefix}/nginx.pid;
error_log {prefix}/nginx-error.log info;
events {{ worker_connections 256; }}
http {{
    include /etc/nginx/mime.types;
    access_log {prefix}/nginx-access.log;
    client_body_temp_path {prefix}/tmp/body;
    proxy_temp_path {prefix}/tmp/proxy;
    fastcgi_temp_path {prefix}/tmp/fastcgi;
    uwsgi_temp_path {prefix}/tmp/uwsgi;
    scgi_temp_path {prefix}/tmp/scgi;
    include {prefix}/sites-enabled/*;
}}
""")
    (prefix / "tmp").mkdir()
    nginx = shutil.which("nginx", path="/usr/sbin:/usr/bin") or "nginx"
    test = subprocess.run([nginx, "-t", "-c", str(main), "-e", str(prefix / "nginx-error.log")],
                          capture_output=True, text=True, timeout=30)
    assert test.returncode == 0 and "syntax is ok" in test.stderr, test.stderr
    return Child("nginx", [nginx, "-c", str(main), "-e", str(prefix / "nginx-error.log"), "-g", "daemon off;"],
                 {"PATH": "/usr/sbin:/usr/bin:/bin"}, prefix / "nginx.out", [p80, p443])


def _mosquitto(prefix: Path, certs: Path, settings: Path, base_env: dict[str, str],
               mqtt_port: int, mqtts_port: int, ws_port: int) -> Child:
    """Step 9: the sample config, and the drop-in's environment."""
    d = prefix / "mosquitto"
    (d / "persist").mkdir(parents=True)
    conf = render((SAMPLES / "mosquitto.conf").read_text(), {
        "pid_file /run/mosquitto/mosquitto.pid": f"pid_file {d}/mosquitto.pid",
        "\nuser mosquitto\n": "\nuser root\n",
        "plugin /opt/hub/build/hub_auth.so": f"plugin {runner.ensure_plugin()}",
        "plugin_opt_settings /etc/hub/config.py": f"plugin_opt_settings {settings}",
        "listener 1883 127.0.0.1": f"listener {mqtt_port} 127.0.0.1",
        "listener 8883\n": f"listener {mqtts_port} 127.0.0.1\n",
        "/etc/mosquitto/certs/hub.example.com/": f"{certs}/",
        "listener 9001 127.0.0.1": f"listener {ws_port} 127.0.0.1",
        "persistence_location /var/lib/mosquitto/": f"persistence_location {d}/persist/",
        "log_dest file /var/log/mosquitto/mosquitto.log": f"log_dest file {d}/mosquitto.log",
    }, "sample_settings/mosquitto.conf")
    (d / "mosquitto.conf").write_text(conf)
    drop_in = (SYSTEMD / "mosquitto.service.d" / "hub.conf").read_text()
    assert "Environment=HUB_SETTINGS=/etc/hub/config.py" in drop_in
    env = {**base_env, **runner.python_env(), "HUB_SETTINGS": str(settings)}
    exe = shutil.which("mosquitto", path="/usr/sbin:/usr/bin") or "mosquitto"
    return Child("mosquitto", [exe, "-c", str(d / "mosquitto.conf")], env, d / "mosquitto.log",
                 [mqtt_port, mqtts_port, ws_port])


@pytest.fixture(scope="module")
def deployment(pg_cluster: PgCluster, s3_server: str) -> Iterator[Deployment]:
    pg_cluster.start()
    prefix = Path(tempfile.mkdtemp(prefix="hub-deploy-"))
    prefix.chmod(0o755)  # nginx's workers (www-data) use its tmp/
    children: dict[str, Child] = {}
    role = dbname = None
    try:
        ports = {name: free_port() for name in ("mqtt", "mqtts", "ws", "http", "p80", "p443")}
        # Steps 3-6: folders, database, bucket, secret key and settings.
        (prefix / "etc/hub").mkdir(parents=True)
        (prefix / "var/lib/hub").mkdir(parents=True)
        role, dbname, password = _database(pg_cluster)
        bucket = f"hub-deploy-{secrets.token_hex(4)}"
        s3_client(s3_server).create_bucket(Bucket=bucket)
        (prefix / "etc/hub/secret_key").write_text(secrets.token_urlsafe(48) + "\n")
        step6 = doc_step(6)
        assert "secrets.token_urlsafe(48)" in step6 and "/etc/hub/secret_key" in step6
        settings = prefix / "etc/hub/config.py"
        settings.write_text(render(heredoc(step6, "/etc/hub/config.py"), {
            '"/var/lib/hub"': repr(str(prefix / "var/lib/hub")),
            '"/etc/hub/secret_key"': repr(str(prefix / "etc/hub/secret_key")),
            "hub:$DB_PASSWORD@127.0.0.1:5432/hub": f"{role}:{password}@127.0.0.1:{pg_cluster.port}/{dbname}",
            "my-hub-bucket": bucket,
            '"eu-west-1"': '"us-east-1"',
            "MQTT_PORT = 1883": f"MQTT_PORT = {ports['mqtt']}",
            "wss://hub.example.com/mqtt": f"wss://localhost:{ports['p443']}/mqtt",
            "HTTP_PORT = 8080": f"HTTP_PORT = {ports['http']}",
        }, "step 6 of docs/operations.md") + f'S3_ENDPOINT_URL = "{s3_server}"\nPASSWORD_HASH_ROUNDS = 4\n')
        env = clean_env(settings)
        # Step 7: schema, first admin, an organization; step 13: a controller's key.
        assert "hub --init-db" in doc_step(7) and "--create-key --controller" in doc_step(13)
        r = subprocess.run([sys.executable, str(ROOT / "run.py"), "--init-db", "--create-org", "acme",
                            "--create-admin", ":".join(ADMIN), "--create-key", "--controller", CONTROLLER],
                           env=env, capture_output=True, text=True, timeout=120, cwd=ROOT)
        assert r.returncode == 0, r.stdout + r.stderr
        key = re.search(r"^hk_\S+$", r.stdout, re.M)
        assert key, r.stdout
        # Step 8: the certificate; step 9: Mosquitto; step 10: the hub's services; step 11: nginx.
        certs = prefix / "certs"
        cert = _openssl_self_signed(certs)
        children["mosquitto"] = _mosquitto(prefix, certs, settings, env, ports["mqtt"], ports["mqtts"],
                                           ports["ws"])
        step10 = doc_step(10)
        # Each one is started once it is ready: the HTTP server listens, the persister and the
        # notifier have their subscriptions (their logs say so after the broker's SUBACK). A value
        # published before the persister's shared subscription exists would reach a watching
        # browser but no persister.
        for unit, name, instance, wait, ready in [
                ("hub-http.service", "http", "", [ports["http"]], ""),
                ("hub-persister@.service", "persister", "1", [], PERSISTER_READY),
                ("hub-notifier.service", "notifier", "", [], NOTIFIER_READY)]:
            assert f"{unit.replace('@.', '@' + instance + '.')}" in step10, f"step 10 no longer enables {unit}"
            argv, unit_env = unit_exec(unit, instance)
            unit_env["HUB_SETTINGS"] = str(settings)
            children[name] = Child(name, argv, {**env, **unit_env}, prefix / f"{name}.log", wait, ready)
        children["nginx"] = _nginx(prefix, certs, ports["http"], ports["ws"], ports["p80"], ports["p443"])
        for child in children.values():
            child.start()
        yield Deployment(prefix, cert, settings, env, ports["p80"], ports["p443"], ports["mqtts"],
                         key.group(0), children)
    finally:
        for child in reversed(list(children.values())):
            child.stop()
        shutil.rmtree(prefix, ignore_errors=True)
        if dbname is not None and pg_cluster.is_running():
            with pg_cluster.connect() as c:
                c.execute(f"DROP DATABASE IF EXISTS {dbname} WITH (FORCE)")
                c.execute(f"DROP ROLE IF EXISTS {role}")


# -- clients ----------------------------------------------------------------------------
class Browser:
    """What the console does: a session cookie and CSRF token over HTTPS, then MQTT over wss."""

    def __init__(self, d: Deployment) -> None:
        self.d = d
        self.jar = CookieJar()
        self.opener = urllib.request.build_opener(urllib.request.HTTPSHandler(context=d.tls()),
                                                  urllib.request.HTTPCookieProcessor(self.jar))
        self.csrf = ""

    def call(self, method: str, path: str, body: dict[str, Any] | None = None) -> tuple[int, Any]:
        req = urllib.request.Request(self.d.https + path, method=method,
                                     data=json.dumps(body).encode() if body is not None else None,
                                     headers={"Content-Type": "application/json", "X-CSRF-Token": self.csrf})
        try:
            with self.opener.open(req, timeout=10) as resp:
                return resp.status, json.loads(resp.read() or b"null")
        except urllib.error.HTTPError as e:
            with e:
                return e.code, json.loads(e.read() or b"null")

    def login(self) -> None:
        status, body = self.call("POST", "/api/v1/login", {"email": ADMIN[0], "password": ADMIN[1]})
        assert status == 200, body
        self.csrf = body["csrf_token"]

    def wait_value(self, path: str, expected: Any, timeout: float = 20.0) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        body: Any = None
        while time.monotonic() < deadline:
            status, body = self.call("GET", f"/api/v1/resources/{path}")
            if status == 200 and body.get("value") == expected:
                return body  # type: ignore[no-any-return]
            time.sleep(0.2)
        raise AssertionError(f"{path} did not read back {expected!r} over HTTPS: {body}")


@dataclass
class WsClient:
    paho: mqtt.Client
    messages: list[tuple[str, bytes]] = field(default_factory=list)
    connack: Any = None
    answered: threading.Event = field(default_factory=threading.Event)
    got: threading.Condition = field(default_factory=threading.Condition)
    subacks: dict[int, list[Any]] = field(default_factory=dict)

    def subscribe(self, topic: str, timeout: float = 10.0) -> list[Any]:
        """Subscribe with QoS 1 and wait for the SUBACK (the subscription is in place then)."""
        _, mid = self.paho.subscribe(topic, qos=1)
        assert self.wait_for(lambda _m: mid in self.subacks, timeout), f"no SUBACK for {topic}"
        return self.subacks.pop(mid)

    def wait_for(self, pred: Callable[[list[tuple[str, bytes]]], bool], timeout: float = 10.0) -> bool:
        with self.got:
            return self.got.wait_for(lambda: pred(self.messages), timeout)

    def close(self) -> None:
        self.paho.disconnect()
        self.paho.loop_stop()
        # The callbacks close a reference cycle (client -> callback -> this -> client); without
        # it paho's __del__ closes its wake-up socket pair as soon as the client is dropped.
        self.paho.on_connect = self.paho.on_message = self.paho.on_subscribe = None


def wss_client(d: Deployment, url: str, username: str, token: str) -> WsClient:
    m = re.fullmatch(r"wss://([^:/]+):(\d+)(/.*)", url)
    assert m, url
    paho = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=f"browser-{secrets.token_hex(4)}",
                       protocol=mqtt.MQTTv5, transport="websockets")
    c = WsClient(paho)
    paho.ws_set_options(path=m.group(3))
    paho.tls_set_context(d.tls())
    paho.username_pw_set(username, token)

    def on_connect(_c: Any, _u: Any, _f: Any, reason: Any, _p: Any) -> None:
        c.connack = reason
        c.answered.set()

    def on_message(_c: Any, _u: Any, msg: mqtt.MQTTMessage) -> None:
        with c.got:
            c.messages.append((msg.topic, msg.payload))
            c.got.notify_all()

    def on_subscribe(_c: Any, _u: Any, mid: int, reasons: Any, _p: Any) -> None:
        with c.got:
            c.subacks[mid] = list(reasons)
            c.got.notify_all()

    paho.on_connect, paho.on_message, paho.on_subscribe = on_connect, on_message, on_subscribe
    paho.connect(m.group(1), int(m.group(2)), keepalive=30)
    paho.loop_start()
    assert c.answered.wait(10), "no CONNACK over wss through nginx"
    return c


def updates(value: Any) -> Callable[[list[tuple[str, bytes]]], bool]:
    def pred(msgs: list[tuple[str, bytes]]) -> bool:
        return any(t == CONTROLLER and b'"update_sequence"' in p and json.dumps(value).encode() in p
                   for t, p in msgs)
    return pred


# -- the tests --------------------------------------------------------------------------
def test_check_passes(deployment: Deployment) -> None:
    for child in deployment.children.values():
        assert child.proc is not None and child.proc.poll() is None, f"{child.name} died:\n{child.tail()}"
    r = subprocess.run([sys.executable, str(ROOT / "run.py"), "--check"], env=deployment.env, capture_output=True,
                       text=True, timeout=60, cwd=ROOT)
    assert r.returncode == 0, r.stdout + r.stderr
    results = [ln.split(":")[0] for ln in r.stdout.splitlines() if ln.startswith(("ok", "FAIL"))]
    assert results == ["ok    settings", "ok    database", "ok    bulk storage", "ok    broker"], r.stdout


def test_https_in_front_of_http(deployment: Deployment) -> None:
    conn = urllib.request.Request(f"http://127.0.0.1:{deployment.http_port}/api/v1/health")

    class NoRedirect(urllib.request.HTTPRedirectHandler):
        def redirect_request(self, *args: Any, **kwargs: Any) -> None:
            return None

    with pytest.raises(urllib.error.HTTPError) as moved:
        urllib.request.build_opener(NoRedirect).open(conn, timeout=10)
    with moved.value:
        assert moved.value.code == 301
        assert moved.value.headers["Location"] == "https://127.0.0.1/api/v1/health"
    deadline = time.monotonic() + 20
    while True:  # "degraded" until the HTTP server's own MQTT connection is up
        with urllib.request.urlopen(deployment.https + "/api/v1/health", context=deployment.tls(),
                                    timeout=10) as resp:
            health = json.loads(resp.read())
            assert resp.status == 200 and resp.headers["Strict-Transport-Security"]
        if health["status"] == "ok" or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    assert health["status"] == "ok", health
    # nginx's client_max_body_size answers before the body is sent, and before the hub sees it.
    conn = http.client.HTTPSConnection("localhost", deployment.https_port, context=deployment.tls(), timeout=10)
    try:
        conn.putrequest("POST", "/api/v1/login")
        conn.putheader("Content-Type", "application/json")
        conn.putheader("Content-Length", str(17 * 1024 * 1024))
        conn.endheaders()
        assert conn.getresponse().status == 413
    finally:
        conn.close()


def test_controller_tls_browser_wss_value_over_https(deployment: Deployment) -> None:
    """A browser watches first (in a fresh deployment, before the persister may have
    subscribed): the controller is held back until a persister is there, so its value
    reaches the browser and is stored (hub/broker_auth/storagegate.py)."""
    commands: list[tuple[str, dict[str, Any]]] = []
    arrived = threading.Event()

    def on_command(type_: str, parameters: dict[str, Any], _topic: str) -> None:
        commands.append((type_, parameters))
        arrived.set()

    browser = Browser(deployment)
    browser.login()
    status, token = browser.call("POST", "/api/v1/mqtt-token")
    assert status == 200, token
    assert token["url"] == f"wss://localhost:{deployment.https_port}/mqtt"
    ws = wss_client(deployment, token["url"], token["username"], token["token"])
    try:
        assert not ws.connack.is_failure, ws.connack
        assert not any(r.is_failure for r in ws.subscribe(CONTROLLER))
        controller = Controller(deployment.controller_key, CONTROLLER, host="localhost",
                                port=deployment.mqtts_port, tls=True, ca_certs=str(deployment.cert),
                                on_command=on_command)
        with controller.connect(wait=60):  # held back until a persister has subscribed
            assert controller.connected.is_set(), controller.refused
            controller.update("temperature", 21.5)
            assert controller.flush(10)
            assert ws.wait_for(updates(21.5)), ws.messages  # live, through nginx's websocket upgrade
            stored = browser.wait_value(f"{CONTROLLER}/temperature", 21.5)  # persisted, read over HTTPS
            assert stored["timestamp"]
            ws.paho.publish(CONTROLLER, json.dumps({"type": "water", "parameters": {"seconds": 3}}), qos=1)
            assert arrived.wait(10), "the browser's command did not reach the controller"
            assert commands == [("water", {"seconds": 3})]
    finally:
        ws.close()


def test_broker_restart_loses_no_queued_message(deployment: Deployment) -> None:
    """Persistence on: a value published while the persister is down (crashed: its session
    keeps its share) survives a broker restart in that session and is stored when it comes
    back."""
    mosquitto, persister = deployment.children["mosquitto"], deployment.children["persister"]
    persister.kill()
    with Controller(deployment.controller_key, CONTROLLER, host="localhost", port=deployment.mqtts_port,
                    tls=True, ca_certs=str(deployment.cert)) as controller:
        controller.update("temperature", 22.5)
        assert controller.flush(10)
    mosquitto.stop()
    assert (deployment.prefix / "mosquitto/persist/mosquitto.db").stat().st_size > 0
    mosquitto.start()
    persister.start()
    browser = Browser(deployment)
    browser.login()
    browser.wait_value(f"{CONTROLLER}/temperature", 22.5, timeout=30)
