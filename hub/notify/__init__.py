"""The notifier daemon (`run.py --notifier`): `send_email` / `send_text_message`,
controller status (`status`, `connected` messages, last heard) and the watchdog.

Modules: `daemon` (MQTT subscriber, workers, watchdog loop), `dispatch` (admission,
throttle, delivery, records), `parse` (the request parameters, native and rhizo),
`channels` (SMTP and the Twilio-compatible SMS API), `lanes` (one controller's status
messages in order), `acks` (acknowledgements in the order the messages came).
"""

from __future__ import annotations

import logging
import signal
import threading

from hub.settings import Settings

log = logging.getLogger("hub.notify")


def main(settings: Settings) -> int:
    from hub.notify.daemon import Notifier

    stop = threading.Event()
    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, lambda *_: stop.set())
        signal.signal(signal.SIGINT, lambda *_: stop.set())
    notifier = Notifier(settings)
    notifier.start()
    try:
        stop.wait()
    finally:
        log.info("notifier stopping")
        notifier.stop()
        notifier.store.close()
    return 0
