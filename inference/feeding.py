"""Feeding a fast model: several processes decode and resample recordings, and each model call is filled
across recordings.

A GPU runs BirdNET far faster than one CPU core decodes and resamples audio, and a task's recordings are
often short: one recording at a time leaves the device idle most of the time. `analyze_many` gives each
recording to one of `workers` producer processes (decode + resample + windows, as `echoroo.audio` does
for one recording), which hand their windows over in shared memory; the consumer fills batches of
`batch_size` windows from whatever recordings have windows ready, runs the model once per batch, and
splits the outputs back to their recordings, in time order per recording. Memory stays bounded: at most
`CHUNKS_IN_FLIGHT` chunks of decoded audio wait at any time.

No Django here: the runner (inference.runner) reads and writes the database around it.
"""

from __future__ import annotations

import multiprocessing
import queue
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from multiprocessing import resource_tracker, shared_memory
from pathlib import Path

import numpy as np

from echoroo import audio
from inference.pipeline import BatchResult, Cancelled, PipelineOptions
from inference.runtimes.base import ModelRuntime
from inference.selection import WindowOutputs

# Windows a producer hands over at a time, and how many such chunks may wait for the model at once.
CHUNK_WINDOWS = 64
CHUNKS_IN_FLIGHT = 32


@dataclass
class RecordingEvent:
    """What `analyze_many` yields: a batch of a recording's results, its end, or why it failed."""

    index: int  # the recording's position in `paths`
    batch: BatchResult | None = None
    finished: bool = False
    error: str = ""


@dataclass
class FeedStats:
    """Where the time went: `model_s` inside the model's calls, `wall_s` in all; `busy` their ratio."""

    model_s: float = 0.0
    wall_s: float = 0.0
    calls: int = 0
    windows: int = 0

    @property
    def busy(self) -> float:
        return self.model_s / self.wall_s if self.wall_s else 0.0


def analyze_many(
    runtime: ModelRuntime,
    paths: Sequence[str | Path],
    options: Sequence[PipelineOptions],
    *,
    batch_size: int,
    workers: int,
    should_stop: Callable[[], bool] | None = None,
    stats: FeedStats | None = None,
) -> Iterator[RecordingEvent]:
    """Run the model over several recordings at once; per recording, results come in time order, then its end."""
    if len(paths) != len(options):
        raise ValueError("give one PipelineOptions per recording")
    stats = stats if stats is not None else FeedStats()
    began = time.perf_counter()
    # Processes where this process may have children (a django-q2 worker may not unless the cluster is told:
    # Q_DAEMONIZE_WORKERS=0), else threads: decoding and resampling release the GIL for most of their time.
    in_processes = not multiprocessing.current_process().daemon
    if in_processes:
        context = multiprocessing.get_context("spawn")  # no fork of a process that may hold a GPU context
        tasks, results = context.Queue(), context.Queue()
        slots = context.BoundedSemaphore(CHUNKS_IN_FLIGHT)
        start_producer = context.Process
    else:
        tasks, results = queue.Queue(), queue.Queue()
        slots = threading.BoundedSemaphore(CHUNKS_IN_FLIGHT)
        start_producer = threading.Thread
    overlaps = {option.config.overlap for option in options}
    if len(overlaps) > 1:
        raise ValueError("the recordings of one call share the job's overlap")
    overlap = overlaps.pop() if overlaps else 0.0
    producers = [
        start_producer(
            target=_produce,
            args=(
                tasks,
                results,
                slots,
                runtime.sample_rate,
                runtime.window_s,
                overlap,
                audio.resampler_in_use(),
                in_processes,
            ),
            daemon=True,
            name=f"audio-producer-{number}",
        )
        for number in range(max(1, min(workers, len(paths))))
    ]
    for index, path in enumerate(paths):
        tasks.put((index, path))  # as given: an echoroo.audio.ImportedFile carries the sha256 to check
    for _ in producers:
        tasks.put(None)
    for producer in producers:
        producer.start()
    selections = [option.selection(runtime) for option in options]
    kept_from = [
        min(option.floor_logit, selection.min_logit) for option, selection in zip(options, selections, strict=True)
    ]
    pending: deque[tuple[int, np.ndarray, np.ndarray, np.ndarray]] = deque()
    queued = [0] * len(paths)  # windows of each recording waiting in `pending`
    ended = [False] * len(paths)
    closed = [False] * len(paths)  # finished or failed: reported, nothing more for it
    open_recordings = len(paths)

    def run_pending() -> Iterator[RecordingEvent]:
        pieces, filled = [], 0
        while pending and filled < batch_size:
            index, starts, ends, windows = pending.popleft()
            room = batch_size - filled
            if len(windows) > room:  # the rest waits at the head of the queue for the next call
                pending.appendleft((index, starts[room:], ends[room:], windows[room:]))
                starts, ends, windows = starts[:room], ends[:room], windows[:room]
            pieces.append((index, starts, ends, windows))
            filled += len(windows)
        windows = np.concatenate([piece[3] for piece in pieces]) if len(pieces) > 1 else pieces[0][3]
        called = time.perf_counter()
        logits, embeddings = runtime.predict_logits(windows)
        stats.model_s += time.perf_counter() - called
        stats.calls += 1
        stats.windows += len(windows)
        offset = 0
        for index, starts, ends, piece in pieces:
            rows = slice(offset, offset + len(piece))
            offset += len(piece)
            queued[index] -= len(piece)
            if closed[index]:
                continue
            outputs = WindowOutputs.from_dense(logits[rows], kept_from[index])
            yield RecordingEvent(
                index,
                batch=BatchResult(
                    starts_s=starts,
                    ends_s=ends,
                    embeddings=embeddings[rows] if options[index].config.store_embeddings else None,
                    hits=selections[index].hits(outputs),
                    outputs=outputs,
                ),
            )
        for index in {piece[0] for piece in pieces}:
            yield from finish_if_done(index)

    def finish_if_done(index: int) -> Iterator[RecordingEvent]:
        nonlocal open_recordings
        if ended[index] and queued[index] == 0 and not closed[index]:
            closed[index] = True
            open_recordings -= 1
            yield RecordingEvent(index, finished=True)

    try:
        while open_recordings:
            if should_stop is not None and should_stop():
                raise Cancelled()
            waiting = sum(queued)
            try:
                message = results.get(timeout=0.05 if waiting else 1.0)
            except queue.Empty:
                if waiting:  # nothing more is ready: run what there is rather than wait
                    yield from run_pending()
                elif not any(producer.is_alive() for producer in producers):
                    raise RuntimeError("the audio producers stopped before handing over every recording") from None
                continue
            kind, index = message[0], message[1]
            if kind == "windows":
                starts, ends, shared = message[2:]
                windows = _take(shared)
                slots.release()
                if not closed[index]:
                    pending.append((index, starts, ends, windows))
                    queued[index] += len(windows)
            elif kind == "done":
                ended[index] = True
                yield from finish_if_done(index)
            else:  # "error"
                if not closed[index]:
                    closed[index] = True
                    open_recordings -= 1
                    yield RecordingEvent(index, error=message[2])
            while sum(queued) >= batch_size:
                yield from run_pending()
    finally:
        stats.wall_s += time.perf_counter() - began
        if in_processes:
            for producer in producers:
                if producer.is_alive():
                    producer.terminate()
                producer.join(timeout=5)
        else:
            while True:  # threads cannot be stopped: let them run out of work
                try:
                    tasks.get_nowait()
                except queue.Empty:
                    break
            for _ in producers:
                tasks.put(None)
        _drain(results, slots)


def _produce(
    tasks, results, slots, sample_rate: int, window_s: float, overlap: float, resampler: str, in_process: bool
) -> None:
    """A producer: decode, resample and cut each recording it takes, chunk by chunk (into shared memory from a
    process)."""
    if in_process:
        audio.use_resampler(resampler)
    while (task := tasks.get()) is not None:
        index, path = task
        try:
            for starts, ends, windows in audio.iter_batches(path, sample_rate, window_s, overlap, CHUNK_WINDOWS):
                slots.acquire()
                results.put(("windows", index, starts, ends, _share(windows) if in_process else windows))
            results.put(("done", index))
        except Exception as error:  # the recording fails, never the others
            results.put(("error", index, str(error) if isinstance(error, audio.AudioError) else f"{error!r}"))


def _share(windows: np.ndarray) -> tuple[str, tuple[int, ...]]:
    """Copy windows into a new shared-memory block; the consumer unlinks it."""
    block = shared_memory.SharedMemory(create=True, size=max(1, windows.nbytes))
    np.ndarray(windows.shape, np.float32, buffer=block.buf)[:] = windows
    # The consumer unlinks the block: this process must not count it as its own leak when it exits.
    resource_tracker.unregister(block._name, "shared_memory")  # noqa: SLF001
    block.close()
    return block.name, windows.shape


def _take(shared: tuple[str, tuple[int, ...]] | np.ndarray) -> np.ndarray:
    """The windows of a chunk: from a producer thread as they are, from a process copied out of its block."""
    if isinstance(shared, np.ndarray):
        return shared
    name, shape = shared
    block = shared_memory.SharedMemory(name=name)
    try:
        return np.ndarray(shape, np.float32, buffer=block.buf).copy()
    finally:
        block.close()
        block.unlink()


def _drain(results, slots) -> None:
    """Free the blocks of chunks nobody will read (a cancel, an error), and their producers' slots."""
    while True:
        try:
            message = results.get(timeout=0.1)
        except (queue.Empty, OSError, ValueError):
            return
        if message[0] == "windows":
            slots.release()
            try:
                _take(message[4])
            except FileNotFoundError:
                pass
