"""Items made ahead of their consumer on a thread: the one read-ahead the pipeline and the embedding reads share.

Plain Python (the pipeline's layer imports no Django). The thread stops at its next item when the
consumer stops early, and an error on it is raised in the consumer.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable, Iterator

_DONE = object()


def made_ahead(
    produce: Callable[[], Iterator], depth: int, *, name: str, on_exit: Callable[[], None] | None = None
) -> Iterator:
    """The items of produce(), made by a thread named `name` up to `depth` ahead; `on_exit` runs on that thread last."""
    ready: queue.Queue = queue.Queue(maxsize=depth)
    stop = threading.Event()

    def put(item) -> bool:
        while not stop.is_set():
            try:
                ready.put(item, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def work() -> None:
        try:
            for item in produce():
                if not put(item):
                    return
            put(_DONE)
        except BaseException as error:  # handed to the consumer, which raises it
            put(error)
        finally:
            if on_exit is not None:
                on_exit()

    thread = threading.Thread(target=work, name=name, daemon=True)
    thread.start()
    try:
        while (item := ready.get()) is not _DONE:
            if isinstance(item, BaseException):
                raise item
            yield item
    finally:
        # The consumer stopped (done, cancelled, out of time, failed): the thread stops at its next item.
        stop.set()
        thread.join(timeout=5)
