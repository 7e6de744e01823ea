"""Query by example: an uploaded snippet checked here, then decoded and embedded with the model.

The upload is written to a temporary file of our own naming (never the client's) and deleted
afterwards. Its size is checked before anything is written, and its length from the header before
any sample is decoded.

Where the model runs: a loaded model costs a process 200-500 MB (measured: 72 MB -> 553 MB after one
BirdNET snippet), and gunicorn runs 2 x cores + 1 web processes. With EMBED_SNIPPETS_IN = "worker"
(what `manage.py serve` sets when it runs the search worker) the snippet's bytes go to the search
worker, a django-q2 cluster of one process on a queue of its own (SEARCH_CLUSTER) where the model stays
loaded, and the web process waits for the vector at most SNIPPET_TIMEOUT_S. On the jobs' queue it would
wait behind hours of recordings. Otherwise ("web") the web process loads the model once and keeps it.
"""

from __future__ import annotations

import math
import os
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np
from django.conf import settings

from echoroo import audio
from embeddings.compute import embed_spans
from inference.runtimes import ModelRuntime, available_runtimes, runtime_class
from search.errors import SearchError

MIB = 1024 * 1024
# The largest snippet accepted: 10 MiB (a minute of 16-bit mono WAV at 48 kHz is 5.5 MiB) and 60 s.
MAX_UPLOAD_BYTES = 10 * MIB
MAX_DURATION_S = 60.0
# Extensions kept on the temporary file, for decoders that go by the name; anything else gets none.
AUDIO_SUFFIXES = {".wav", ".flac", ".ogg", ".oga", ".mp3", ".aif", ".aiff"}


def installed_model(model_name: str, model_version: str | None = None) -> tuple[str, str]:
    """(name, version) of the installed model: the only one that embeds a snippet into its runs' space."""
    if model_name not in available_runtimes():
        raise SearchError(
            {"model_name": f"unknown model {model_name!r}; models that embed audio: {', '.join(available_runtimes())}"}
        )
    version = runtime_class(model_name).version
    if model_version not in (None, "", "latest", version):
        raise SearchError(
            {"model_version": f"{model_name} is installed at version {version} only: snippets embed with that one"}
        )
    return model_name, version


def load_model(model_name: str) -> ModelRuntime:
    """The model with a job's default settings, loaded once per process and kept."""
    from inference.config import InferenceConfig
    from inference.runner import load_runtime

    try:
        return load_runtime(model_name, InferenceConfig())
    except Exception as error:  # a missing or broken model: say so, do not fail the server
        raise SearchError({"model_name": f"{model_name} cannot be loaded here: {error}"}) from error


def check_size(upload) -> None:
    """Refuse an upload over MAX_UPLOAD_BYTES, from its size alone."""
    if upload.size > MAX_UPLOAD_BYTES:
        raise SearchError(
            {
                "file": f"is {upload.size / MIB:.1f} MiB; the most is {MAX_UPLOAD_BYTES / MIB:g} MiB: "
                f"upload a snippet of at most {MAX_DURATION_S:g} s"
            }
        )


class SnippetWorkerUnavailable(SearchError):
    """The search worker did not answer: the server's problem, not the snippet's (the API answers 503)."""

    def __init__(self, why: str):
        super().__init__({"file": why})


def embed_upload(upload, model_name: str) -> np.ndarray:
    """The snippet's embedding with the model: its one window, or the mean of its windows' unit vectors."""
    check_size(upload)
    with _saved(upload) as path:
        check_length(path)
        if settings.EMBED_SNIPPETS_IN == "worker":
            return embed_in_worker(path.read_bytes(), path.suffix, model_name)
        return embed_file(path, load_model(model_name))


def check_length(path: Path) -> float:
    """The snippet's duration from its header, or a SearchError if it is empty, too long or not audio."""
    try:
        info = audio.read_info(path)
    except audio.AudioError as error:
        raise SearchError({"file": str(error).replace(str(path), "the uploaded file")}) from error
    if info.frames == 0:
        raise SearchError({"file": "holds no audio (0 samples)"})
    if info.duration_s > MAX_DURATION_S:
        raise SearchError(
            {"file": f"lasts {info.duration_s:.1f} s; the most is {MAX_DURATION_S:g} s: cut a shorter snippet"}
        )
    return info.duration_s


def embed_file(path: Path, runtime: ModelRuntime) -> np.ndarray:
    """A checked snippet file decoded at the model's rate and embedded."""
    try:
        samples = audio.load_segment(path, 0.0, check_length(path), runtime.sample_rate)
    except audio.AudioError as error:
        raise SearchError({"file": str(error).replace(str(path), "the uploaded file")}) from error
    return embed_spans(runtime, [samples])[0]


def embed_in_worker(snippet: bytes, suffix: str, model_name: str) -> np.ndarray:
    """The snippet embedded by the search worker (search.tasks.embed_snippet), waited for at most SNIPPET_TIMEOUT_S."""
    from django_q.models import Task
    from django_q.tasks import async_task

    deadline = time.time() + settings.SNIPPET_TIMEOUT_S
    task_id = async_task(
        "search.tasks.embed_snippet",
        snippet,
        suffix,
        model_name,
        deadline,
        cluster=settings.SEARCH_CLUSTER,
        timeout=math.ceil(settings.SNIPPET_TIMEOUT_S) + 60,  # django-q2 takes whole seconds only
        task_name=f"snippet-{model_name}-{int(deadline)}",
    )
    pause_s = 0.01
    while (task := Task.objects.filter(id=task_id).first()) is None:
        if time.time() >= deadline:
            raise SnippetWorkerUnavailable(
                f"the search worker did not embed the snippet within {settings.SNIPPET_TIMEOUT_S:g} s: is it "
                f"running (`Q_CLUSTER_NAME={settings.SEARCH_CLUSTER} manage.py qcluster`; `manage.py serve` starts "
                "it) and not stuck? Try again, or set EMBED_SNIPPETS_IN=web to embed in the web server"
            )
        time.sleep(pause_s)
        pause_s = min(pause_s * 1.5, 0.2)
    # The row holds the snippet's bytes (the task's arguments): read, it is of no more use.
    Task.objects.filter(id=task_id).delete()
    answer = task.result if task.success else None
    if not isinstance(answer, dict):
        raise SnippetWorkerUnavailable(f"the search worker failed to embed the snippet: {str(task.result)[:300]}")
    if "errors" in answer:
        raise SearchError(answer["errors"])
    return np.asarray(answer["embedding"], dtype=np.float32)


@contextmanager
def _saved(upload) -> Iterator[Path]:
    """The upload in a temporary file named by us, deleted afterwards whatever happens."""
    suffix = Path(getattr(upload, "name", "") or "").suffix.lower()
    descriptor, name = tempfile.mkstemp(prefix="echoroo-query-", suffix=suffix if suffix in AUDIO_SUFFIXES else "")
    path = Path(name)
    try:
        with os.fdopen(descriptor, "wb") as out:
            for chunk in upload.chunks():
                out.write(chunk)
        yield path
    finally:
        path.unlink(missing_ok=True)
