"""The notifier daemon (`run.py --notifier`): `send_email` / `send_text_message`,
controller status (`status`, `connected` messages, last heard) and the watchdog.

Modules: `daemon` (MQTT subscriber, workers, watchdog loop), `dispatch` (admission,
throttle, delivery, records), `parse` (the request parameters, native and rhizo),
`channels` (SMTP and the Twilio-compatible SMS API), `lanes` (one controller's status
messages in order), `acks` (acknowledgements in the order the messages came).
"""

from __future__ import annotations

import logging
import threading

from hub.settings import Settings
from hub.stopsignals import take_stop_signals

log = logging.getLogger("hub.notify")


def main(settings: Settings) -> int:
    from hub.notify.daemon import Notifier

    stop = threading.Event()
    take_stop_signals(lambda _signum: stop.set(), "hub-notifier-signals")  # hub/stopsignals.py says why
    notifier = Notifier(settings)
    notifier.start()
    try:
        stop.wait()
    finally:
        log.info("notifier stopping")
        notifier.stop()
        notifier.store.close()
    return 0
