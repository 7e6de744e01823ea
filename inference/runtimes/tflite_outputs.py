"""A copy of a TFLite model that also outputs the input of its last layer, made once and cached on disk.

The LiteRT interpreter (with its default XNNPACK delegate) frees intermediate tensors, so the only cheap
way to read an embedding is to make it a model output.
"""

from __future__ import annotations

import hashlib
import logging
import os
import tempfile
from collections.abc import Callable
from pathlib import Path

import flatbuffers
import numpy as np
from ai_edge_litert import schema_py_generated as schema

log = logging.getLogger(__name__)

_FILE_IDENTIFIER = b"TFL3"


def default_cache_dir() -> Path:
    """Where derived model copies go when the caller names no folder (outside Django: benchmarks, scripts).

    The application passes settings.MODEL_CACHE_DIR (ECHOROO_CACHE_DIR, read by echoroo.settings alone)."""
    return Path.home() / ".cache" / "echoroo"


def last_layer_input(model_bytes: bytes) -> int:
    """Index of the tensor that the operator producing the model's first output reads first."""
    graph = schema.Model.GetRootAs(model_bytes, 0).Subgraphs(0)
    output = int(graph.Outputs(0))
    for position in range(graph.OperatorsLength()):
        operator = graph.Operators(position)
        if output in operator.OutputsAsNumpy():
            return int(operator.Inputs(0))
    raise ValueError("no operator in the model produces its output")


def with_extra_output(model_bytes: bytes, tensor_index: int) -> bytes:
    """The same model with `tensor_index` appended to its outputs."""
    model = schema.ModelT.InitFromPackedBuf(model_bytes, 0)
    graph = model.subgraphs[0]
    graph.outputs = np.append(np.asarray(graph.outputs, dtype=np.int32), np.int32(tensor_index))
    builder = flatbuffers.Builder(len(model_bytes) + 65536)
    builder.Finish(model.Pack(builder), file_identifier=_FILE_IDENTIFIER)
    return bytes(builder.Output())


def model_with_last_layer_input(
    model_path: Path, cache_dir: Path, *, transform: Callable[[bytes], bytes] | None = None, name: str = ""
) -> tuple[Path | bytes, int]:
    """(path of the cached copy, or its bytes when the cache is not writable; index of the added output).

    With `transform` (named `name` in the copy's file name) the copy is that rewrite of the model, plus the output.
    """
    model_bytes = model_path.read_bytes()
    # A transform may drop and add operators, never renumber tensors: the embedding keeps its index.
    tensor_index = last_layer_input(model_bytes)
    digest = hashlib.sha256(model_bytes).hexdigest()[:16]
    cached = cache_dir / f"{model_path.stem}.{name + '.' if name else ''}embedding-output.{digest}.tflite"
    if cached.is_file():
        return cached, tensor_index
    if transform is not None:
        model_bytes = transform(model_bytes)
    rewritten = with_extra_output(model_bytes, tensor_index)
    part_name = None
    try:
        cache_dir.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=cache_dir, suffix=".part", delete=False) as part:
            part_name = part.name
            part.write(rewritten)
        os.chmod(part_name, 0o644)
        os.replace(part_name, cached)  # atomic: a concurrent worker sees the whole file or none
    except OSError as error:
        if part_name:
            Path(part_name).unlink(missing_ok=True)
        log.warning("cannot cache %s in %s (%s); keeping it in memory", cached.name, cache_dir, error)
        return rewritten, tensor_index
    return cached, tensor_index
