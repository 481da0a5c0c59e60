"""The hub on a RabbitMQ cluster (BROKER=rabbitmq): a room of its own.

Mosquitto stays the default and the single-box path. Under BROKER=rabbitmq:
- Controllers and browsers speak MQTT 3.1.1 to any node (`rabbitmq_mqtt`, `rabbitmq_web_mqtt`).
  Topic `a/b/c` is routing key `a.b.c` on `amq.topic`; so on this broker a folder name may not
  hold `.` (it would be two folders), nor `*` or `#` (`routing.py`).
- Every node asks the broker-auth service (`authservice.py`, `run.py --broker-auth`) through
  `rabbitmq_auth_backend_http`; it answers with the same `Policy` the Mosquitto plugin runs
  (`hub/broker_auth/policy.py`) over the same snapshot (`authstate.py`: the policy, the reloader,
  what each client subscribed to), and closes connections through the management API when a
  credential or a read right goes (`revoker.py`). It lets controllers in only once the hub's
  queues exist.
- The hub's quorum queues (`topology.py`: PREFIX.persist, PREFIX.notify, bound to `amq.topic`
  with `#`, with dead-letter queues) are declared by the broker component before anything
  publishes: a value waits in its queue while no persister runs.
- Persisters and the notifier consume them over AMQP (`feed.py`), acknowledging after commit.
- `cluster.py`: a local cluster of plain rabbitmq-server processes for development and tests;
  `runner.py`: `run.py --broker` on this broker (that cluster, the queues).
- `checks.py`: `run.py --check` and `/health` on this broker.
- `nodes.py`: where the nodes are, and the credentials the hub uses with them.
"""
