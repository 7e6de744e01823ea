"""Query by example: an uploaded snippet checked, decoded and embedded with the model, in this process.

The upload is written to a temporary file of our own naming (never the client's) and deleted
afterwards. Its size is checked before anything is written, and its length from the header before
any sample is decoded. The model stays loaded in the web process once used.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np

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


def embed_upload(upload, runtime: ModelRuntime) -> np.ndarray:
    """The snippet's embedding: its one window, or the mean of its windows' unit vectors."""
    check_size(upload)
    with _saved(upload) as path:
        try:
            info = audio.read_info(path)
            if info.frames == 0:
                raise SearchError({"file": "holds no audio (0 samples)"})
            if info.duration_s > MAX_DURATION_S:
                raise SearchError(
                    {"file": f"lasts {info.duration_s:.1f} s; the most is {MAX_DURATION_S:g} s: cut a shorter snippet"}
                )
            samples = audio.load_segment(path, 0.0, info.duration_s, runtime.sample_rate)
        except audio.AudioError as error:
            raise SearchError({"file": str(error).replace(str(path), "the uploaded file")}) from error
    return embed_spans(runtime, [samples])[0]


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
