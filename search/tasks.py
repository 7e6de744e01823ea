"""django-q2 entry point of the search worker: embed an uploaded snippet where the model stays loaded."""

from __future__ import annotations

import tempfile
import time
from pathlib import Path

from search.errors import SearchError
from search.uploads import AUDIO_SUFFIXES, embed_file, load_model


def embed_snippet(snippet: bytes, suffix: str, model_name: str, deadline: float) -> dict:
    """{"embedding": [floats]}, or {"errors": {field: why}} for a snippet that cannot be embedded.

    A request that stopped waiting (past `deadline`) is not embedded: nobody would read it.
    """
    if time.time() > deadline:
        return {"errors": {"file": "the search stopped waiting for this snippet"}}
    with tempfile.TemporaryDirectory(prefix="echoroo-snippet-") as folder:
        path = Path(folder) / ("snippet" + (suffix if suffix in AUDIO_SUFFIXES else ""))
        path.write_bytes(snippet)
        try:
            return {"embedding": embed_file(path, load_model(model_name)).tolist()}
        except SearchError as error:
            return {"errors": error.errors}
