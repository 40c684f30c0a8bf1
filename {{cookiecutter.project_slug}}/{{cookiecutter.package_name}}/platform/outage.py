"""Skip a failing store for an interval instead of waiting for it on every call.

The cache and the rate limits keep their data in a store that may fail: while it does, each
worker waits for it once per interval (one call tries it), and the other calls take their
fallback at once.
"""

import logging
import threading
import time
from collections.abc import Callable
from typing import TypeVar

log = logging.getLogger(__name__)
T = TypeVar("T")


class Outage:
    """After a failure of ``store`` (logged), skip it for the interval, then let one call try it."""

    def __init__(self, store: str, interval: float) -> None:
        self.store = store  # what the log lines name
        self.interval = interval
        self.retry_at = 0.0  # after a failure: when one call may try the store again
        self.lock = threading.Lock()

    def call(self, method: Callable[[], T], fallback: Callable[[], T]) -> T:
        """Return what ``method`` answers, or ``fallback``'s answer while the store is skipped
        or when ``method`` fails (a failure starts an outage)."""
        with self.lock:
            now = time.monotonic()
            if now < self.retry_at:
                return fallback()
            retrying = bool(self.retry_at)
            if retrying:  # the store failed: the other calls skip it while this one tries
                self.retry_at = now + self.interval
        try:
            answer = method()
        except Exception as exc:  # noqa: BLE001  (any failure of the store degrades to fallback)
            log.warning("%s skipped for %ss: %r", self.store, self.interval, exc)
            self.retry_at = time.monotonic() + self.interval
            return fallback()
        if retrying:
            log.info("%s answers again", self.store)
        self.retry_at = 0.0
        return answer
