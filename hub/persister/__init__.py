"""The persister daemon: MQTT `update_sequence` messages -> stored revisions.

`run.py --persister` calls `main(settings)`. Modules: `intake` (MQTT, manual
ack), `batcher`, `writer` (one transaction per batch), `lookup` (folders,
sequences, auto-create), `deadletters`, `trimmer` (background), `stats`
(counters for /health), `daemon` (the loop, retries, signals).
"""

from __future__ import annotations

from hub.settings import Settings


def main(settings: Settings) -> int:
    from hub.persister.daemon import Daemon

    return Daemon(settings).run()
