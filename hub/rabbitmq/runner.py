"""`run.py --broker` under BROKER=rabbitmq: the local cluster (RABBITMQ_LOCAL) and the hub's
queues.

With RABBITMQ_LOCAL it starts the nodes (`cluster.LocalCluster`), starts again a node that
dies (as systemd would restart a node's service), and stops them all on SIGTERM/SIGINT.
Either way it declares the hub's queues (`topology.declare`) once the nodes answer, and
retries with a clear line while none does; only then is it ready: the broker-auth service
lets controllers and browsers in once those queues exist, so no value is ever routed to
no queue.
"""

from __future__ import annotations

import logging
import threading
import time

from hub.rabbitmq.cluster import ClusterError, LocalCluster
from hub.settings import Settings
from hub.stopsignals import take_stop_signals
from hub.supervisor import STOP_TIMEOUT

log = logging.getLogger("hub.rabbitmq")
RETRY_MAX = 10.0
# then the nodes are killed: well within the supervisor's wait before it kills this process,
# so no node outlives it
STOP_SECONDS = STOP_TIMEOUT - 10.0


def declare_with_retry(s: Settings, stop: threading.Event) -> bool:
    """topology.declare until it works (True) or `stop` is set (False)."""
    from hub.rabbitmq import topology

    delay, attempt = 0.5, 0
    while not stop.is_set():
        attempt += 1
        try:
            topology.declare(s)
            return True
        except topology.TopologyError:
            raise  # a queue declared with other arguments: an operator must decide
        except Exception as e:  # noqa: BLE001 - nodes not up yet: say so, retry
            if attempt in (1, 5) or attempt % 20 == 0:
                log.error("cannot declare the hub's queues yet (attempt %d: %s); is a RabbitMQ node up? "
                          "retrying up to every %.0f s", attempt, e, RETRY_MAX)
        stop.wait(delay)
        delay = min(RETRY_MAX, delay * 2)
    return False


def run(s: Settings) -> int:
    stop = threading.Event()
    take_stop_signals(lambda *_a: stop.set(), "hub-broker-signals")
    cluster = LocalCluster(s) if s.RABBITMQ_LOCAL else None
    if cluster is not None:
        cluster.stopping = stop.is_set  # a stop signal while the nodes start ends the start
    try:
        if cluster is not None:
            try:
                cluster.start()
            except ClusterError as e:
                if stop.is_set():
                    return 0
                log.error("cannot start the local RabbitMQ cluster: %s", e)
                return 1
        if not declare_with_retry(s, stop):
            return 0
        log.info("the hub's queues are declared: the broker is ready")
        while not stop.wait(1.0):
            if cluster is None:
                continue
            for i in cluster.dead():
                rc = cluster.procs[i].returncode
                log.error("RabbitMQ node %s exited (status %s): starting it again", cluster.nodes[i].name, rc)
                cluster.procs.pop(i)
                time.sleep(1.0)
                try:
                    cluster.start_node(i)
                except ClusterError as e:
                    log.error("cannot start node %s again: %s", cluster.nodes[i].name, e)
        return 0
    finally:
        if cluster is not None:
            log.info("stopping the local RabbitMQ cluster")
            cluster.stop(STOP_SECONDS)
            log.info("the local RabbitMQ cluster has stopped")
