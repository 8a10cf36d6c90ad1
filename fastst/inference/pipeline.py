"""Worker threads around a compute loop, joined by bounded queues: the first error in a worker stops
the others and is raised in the caller's next `get`, so a failed decode or encode never hangs."""
from __future__ import annotations

import queue
import threading
from collections.abc import Callable
from typing import Any


class Pipeline:
    """Reader and writer threads around the caller's compute loop, joined by bounded queues."""

    def __init__(self) -> None:
        self.stop = threading.Event()
        self.errors: list[BaseException] = []

    def put(self, q: queue.Queue, item: Any) -> bool:
        while not self.stop.is_set():
            try:
                q.put(item, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def get(self, q: queue.Queue) -> Any:
        while True:
            try:
                return q.get(timeout=0.1)
            except queue.Empty:
                if self.errors:
                    raise self.errors[0] from None

    def thread(self, target: Callable[[], None]) -> threading.Thread:
        def run() -> None:
            try:
                target()
            except BaseException as e:
                self.errors.append(e)
                self.stop.set()

        t = threading.Thread(target=run, daemon=True)
        t.start()
        return t
