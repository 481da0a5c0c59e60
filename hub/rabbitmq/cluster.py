"""A local RabbitMQ cluster of plain `rabbitmq-server` processes (development and tests).

Each node gets its own folder under `root` (DATA_DIR/rabbitmq by default): config, data
(mnesia, quorum logs) and log. All of them share one Erlang cookie (`root/.erlang.cookie`,
HOME of every node) and one epmd of their own on `nodes.epmd_port`, so nothing system-wide
is started or needed. Node 0 starts first; the others then join it (classic_config peer
discovery lists them all), about 20 s in all. A node killed with -9 and started again
rejoins with its data.

Every node asks the broker-auth service (`authservice.py`) through
`rabbitmq_auth_backend_http`; the admin user (RABBITMQ_ADMIN_USER, internal backend) is
created by each node on its first boot.
"""

from __future__ import annotations

import base64
import json
import logging
import os
import secrets
import signal
import socket
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

from hub.rabbitmq import nodes as nodes_mod
from hub.rabbitmq.nodes import Node
from hub.settings import Settings

log = logging.getLogger("hub.rabbitmq.cluster")
PLUGINS = ("rabbitmq_management", "rabbitmq_mqtt", "rabbitmq_web_mqtt", "rabbitmq_auth_backend_http")
EPMD = "/usr/bin/epmd"


class ClusterError(RuntimeError):
    pass


def management_get(s: Settings, node: Node, path: str, timeout: float = 3.0) -> Any:
    """GET `path` of `node`'s management API as the admin user; the parsed JSON."""
    user, password = nodes_mod.admin_credentials(s)
    req = urllib.request.Request(node.management_url + path)
    req.add_header("Authorization", "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode())
    with urllib.request.urlopen(req, timeout=timeout) as r:  # noqa: S310 - our own node's URL
        return json.loads(r.read())


def port_open(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=0.5):
            return True
    except OSError:
        return False


class LocalCluster:
    def __init__(self, settings: Settings, root: Path | None = None) -> None:
        self.s = settings
        self.nodes = nodes_mod.nodes(settings)
        if any(n.host not in ("127.0.0.1", "localhost") for n in self.nodes):
            raise ClusterError("a local cluster runs on 127.0.0.1 only: set RABBITMQ_LOCAL = False for "
                               "nodes on other hosts (each runs its own rabbitmq-server service)")
        self.root = root or settings.data_path / "rabbitmq"
        self.epmd_port = nodes_mod.epmd_port(settings)
        self.procs: dict[int, subprocess.Popen[bytes]] = {}
        self.kills = 0
        self.stopping: Callable[[], bool] = lambda: False  # true: start() gives up (ClusterError)

    # -- files ------------------------------------------------------------------------
    def node_dir(self, i: int) -> Path:
        return self.root / f"node-{i}"

    def config_text(self, node: Node) -> str:
        user, password = nodes_mod.admin_credentials(self.s)
        base = nodes_mod.auth_base_url(self.s)
        peers = "\n".join(f"cluster_formation.classic_config.nodes.{n.index + 1} = {n.name}" for n in self.nodes)
        return f"""# written by hub/rabbitmq/cluster.py: rewritten at each start
listeners.tcp.default = 127.0.0.1:{node.amqp}
mqtt.listeners.tcp.default = 127.0.0.1:{node.mqtt}
web_mqtt.tcp.ip = 127.0.0.1
web_mqtt.tcp.port = {node.web_mqtt}
web_mqtt.ws_path = /mqtt
management.tcp.ip = 127.0.0.1
management.tcp.port = {node.management}
management.rates_mode = none
collect_statistics_interval = 1000
cluster_formation.peer_discovery_backend = classic_config
{peers}
cluster_partition_handling = pause_minority
auth_backends.1 = internal
auth_backends.2 = http
auth_http.http_method = post
auth_http.user_path = {base}/user
auth_http.vhost_path = {base}/vhost
auth_http.resource_path = {base}/resource
auth_http.topic_path = {base}/topic
default_user = {user}
default_pass = {password}
default_user_tags.administrator = true
loopback_users = none
mqtt.allow_anonymous = false
mqtt.vhost = /
mqtt.exchange = amq.topic
log.console = false
log.file.level = info
"""

    def write_files(self) -> None:
        self.root.mkdir(parents=True, exist_ok=True)
        cookie = self.root / ".erlang.cookie"
        if not cookie.exists():
            fd = os.open(cookie, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "w") as f:
                f.write(secrets.token_hex(20))
        (self.root / "enabled_plugins").write_text("[" + ",".join(PLUGINS) + "].\n")
        for node in self.nodes:
            d = self.node_dir(node.index)
            d.mkdir(exist_ok=True)
            path = d / "rabbitmq.conf"
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)  # holds the admin password
            with os.fdopen(fd, "w") as f:
                f.write(self.config_text(node))

    def env(self, node: Node | None = None) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("RABBITMQ_")}
        env.update(HOME=str(self.root), ERL_EPMD_PORT=str(self.epmd_port), LC_ALL="C.UTF-8")
        if node is not None:
            d = self.node_dir(node.index)
            env.update(RABBITMQ_NODENAME=node.name, RABBITMQ_NODE_PORT=str(node.amqp),
                       RABBITMQ_DIST_PORT=str(node.dist), RABBITMQ_MNESIA_BASE=str(d / "data"),
                       RABBITMQ_LOG_BASE=str(d / "log"), RABBITMQ_CONFIG_FILE=str(d / "rabbitmq.conf"),
                       RABBITMQ_ENABLED_PLUGINS_FILE=str(self.root / "enabled_plugins"),
                       RABBITMQ_PID_FILE=str(d / "pid"))
        return env

    # -- life cycle -----------------------------------------------------------------
    def formed(self) -> bool:
        """Whether every node has run in this cluster before (its Mnesia directory exists)."""
        return all((self.node_dir(n.index) / "data" / n.name).is_dir() for n in self.nodes)

    def start(self, timeout: float = 120.0) -> None:
        """Start every node and wait until all run in one cluster. A new cluster starts node 0
        first and the others join it. A cluster that ran before starts all nodes at once:
        a node that was not the last to stop waits for the others' tables before it answers
        (after a kill -9 of them all, say), so one at a time would wait for minutes."""
        self.write_files()
        self._start_epmd()
        deadline = time.monotonic() + timeout
        others = self.nodes
        if not self.formed():
            first, *others = self.nodes
            self.start_node(first.index)
            self.wait_node(first.index, deadline - time.monotonic())
        for node in others:
            self.start_node(node.index)
        for node in others:
            self.wait_node(node.index, deadline - time.monotonic())
        self.wait_clustered(deadline - time.monotonic())
        log.info("RabbitMQ cluster of %d nodes running (MQTT on %s)", len(self.nodes),
                 ", ".join(str(n.mqtt) for n in self.nodes))

    def _check_stopping(self, what: str) -> None:
        if self.stopping():
            raise ClusterError(f"asked to stop while {what}")

    def _start_epmd(self) -> None:
        if port_open("127.0.0.1", self.epmd_port):
            return
        # -relaxed_command_check: `epmd -kill` works while a killed node is still registered
        subprocess.run([EPMD, "-port", str(self.epmd_port), "-daemon", "-relaxed_command_check"], env=self.env(),
                       check=True)
        for _ in range(100):
            if port_open("127.0.0.1", self.epmd_port):
                return
            time.sleep(0.05)
        raise ClusterError(f"epmd did not open 127.0.0.1:{self.epmd_port}")

    def start_node(self, i: int) -> None:
        node = self.nodes[i]
        for port in (node.amqp, node.mqtt, node.web_mqtt, node.management, node.dist):
            if port_open("127.0.0.1", port):
                raise ClusterError(f"port {port} of RabbitMQ node {i} is taken: another cluster or "
                                   "program uses it (set RABBITMQ_BASE_PORT, MQTT_PORT, MQTT_WS_PORT)")
        d = self.node_dir(i)
        out = open(d / "stdout.log", "ab")  # noqa: SIM115 - the node's own
        self.procs[i] = subprocess.Popen([self.s.RABBITMQ_SERVER_BIN], env=self.env(node), cwd=d,
                                         stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
                                         start_new_session=True)
        out.close()
        log.info("starting RabbitMQ node %s (pid %d; log %s)", node.name, self.procs[i].pid, d / "log")

    def wait_node(self, i: int, timeout: float) -> None:
        """Until node i's management API and its MQTT listener answer."""
        node = self.nodes[i]
        deadline = time.monotonic() + max(1.0, timeout)
        while time.monotonic() < deadline:
            self._check_stopping(f"waiting for node {node.name}")
            proc = self.procs.get(i)
            if proc is not None and proc.poll() is not None:
                raise ClusterError(f"RabbitMQ node {node.name} exited with status {proc.returncode}: see "
                                   f"{self.node_dir(i) / 'log'} and {self.node_dir(i) / 'stdout.log'}")
            try:
                management_get(self.s, node, "/api/overview", timeout=1.0)
                if port_open(node.host, node.mqtt):
                    return
            except (OSError, urllib.error.URLError, ValueError):
                pass
            time.sleep(0.2)
        raise ClusterError(f"RabbitMQ node {node.name} did not come up within {timeout:.0f} s: see "
                           f"{self.node_dir(i) / 'log'}")

    def running(self) -> list[str]:
        """Names of the nodes the first answering node sees running."""
        for node in self.nodes:
            try:
                return [n["name"] for n in management_get(self.s, node, "/api/nodes", 2.0) if n.get("running")]
            except (OSError, urllib.error.URLError, ValueError):
                continue
        return []

    def wait_clustered(self, timeout: float) -> None:
        want = {n.name for n in self.nodes}
        deadline = time.monotonic() + max(1.0, timeout)
        seen: list[str] = []
        while time.monotonic() < deadline:
            self._check_stopping("waiting for the nodes to form one cluster")
            seen = self.running()
            if want <= set(seen):
                return
            time.sleep(0.2)
        raise ClusterError(f"the RabbitMQ nodes did not form one cluster within {timeout:.0f} s "
                           f"(running: {', '.join(seen) or 'none'})")

    def kill(self, i: int) -> None:
        """kill -9 node i (its whole process group), as a machine loss would."""
        proc = self.procs.pop(i, None)
        if proc is None:
            return
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        proc.wait()
        self.kills += 1
        log.warning("killed RabbitMQ node %s with -9", self.nodes[i].name)

    def restart(self, i: int, timeout: float = 60.0) -> None:
        self.start_node(i)
        self.wait_node(i, timeout)
        self.wait_clustered(timeout)

    def stop_node(self, i: int, timeout: float = 30.0) -> None:
        proc = self.procs.pop(i, None)
        if proc is not None:
            self._terminate({i: proc}, timeout)

    def stop(self, timeout: float = 30.0) -> None:
        """Stop every node (all at once: one by one, the last ones wait for quorum), then
        the cluster's epmd."""
        procs, self.procs = self.procs, {}
        self._terminate(procs, timeout)
        if port_open("127.0.0.1", self.epmd_port):
            subprocess.run([EPMD, "-port", str(self.epmd_port), "-kill"], env=self.env(),
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=False)

    def _terminate(self, procs: dict[int, subprocess.Popen[bytes]], timeout: float) -> None:
        for proc in procs.values():
            try:
                os.killpg(proc.pid, signal.SIGTERM)  # the Erlang VM stops the node cleanly on SIGTERM
            except ProcessLookupError:
                pass
        deadline = time.monotonic() + timeout
        for i, proc in procs.items():
            try:
                proc.wait(max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                log.warning("RabbitMQ node %s did not stop within %.0f s: killing it", self.nodes[i].name, timeout)
            try:  # erl_child_setup and friends share the group
                os.killpg(proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            proc.wait()

    def dead(self) -> list[int]:
        """Nodes whose process ended by itself."""
        return [i for i, p in self.procs.items() if p.poll() is not None]

    def __enter__(self) -> LocalCluster:
        self.start()
        return self

    def __exit__(self, *_exc: object) -> None:
        self.stop()
