"""Database work on other threads, each with its own connection: reading ahead, and writing batches in parallel.

Another connection sees committed rows only, and what it writes is outside the caller's
transaction: callers use these only when they are not inside one (see in_transaction()).
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import Future

from django.db import connection

_DONE = object()


def in_transaction() -> bool:
    return connection.in_atomic_block


def read_ahead_in_thread(produce: Callable[[], Iterator], depth: int) -> Iterator:
    """The items of produce(), made by a thread up to `depth` ahead of the consumer."""
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
            connection.close()  # this thread's own connection

    thread = threading.Thread(target=work, name="read-ahead", daemon=True)
    thread.start()
    try:
        while (item := ready.get()) is not _DONE:
            if isinstance(item, BaseException):
                raise item
            yield item
    finally:
        # The consumer stopped (done, cancelled, out of time, failed): the thread stops at its next item.
        stop.set()
        thread.join()


class Writers:
    """`count` threads running submitted functions, each on its own connection, closed when the pool closes.

    With count 0 a function runs at once, here, on this connection (inside a transaction, say).
    """

    def __init__(self, count: int):
        self.count = count
        self._tasks: queue.Queue = queue.Queue()
        self._threads = [threading.Thread(target=self._work, name=f"writer-{i}", daemon=True) for i in range(count)]
        for thread in self._threads:
            thread.start()

    def submit(self, function: Callable, *args) -> Future:
        future: Future = Future()
        if self.count:
            self._tasks.put((future, function, args))
        else:
            future.set_result(function(*args))
        return future

    def _work(self) -> None:
        try:
            while (task := self._tasks.get()) is not None:
                future, function, args = task
                if future.set_running_or_notify_cancel():
                    try:
                        future.set_result(function(*args))
                    except BaseException as error:
                        future.set_exception(error)
        finally:
            connection.close()

    def close(self) -> None:
        """Wait for the functions submitted, then stop the threads."""
        for _ in self._threads:
            self._tasks.put(None)
        for thread in self._threads:
            thread.join()

    def __enter__(self) -> Writers:
        return self

    def __exit__(self, *exc) -> None:
        self.close()
