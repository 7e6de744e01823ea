"""The model runtimes: which exist, and one loaded instance of each per process.

A new model is one module implementing `ModelRuntime` plus one line in `RUNTIMES`. Runtimes are
imported only when asked for, so importing this package loads neither TensorFlow nor LiteRT.
"""

from __future__ import annotations

import importlib
import threading
from typing import Any

from inference.runtimes.base import Label, ModelRuntime

__all__ = ["RUNTIMES", "Label", "ModelRuntime", "available_runtimes", "get_runtime"]

# name -> "module:class"
RUNTIMES: dict[str, str] = {
    "birdnet": "inference.runtimes.birdnet:BirdNetRuntime",
    "perch": "inference.runtimes.perch:PerchRuntime",
}

_loaded: dict[tuple, ModelRuntime] = {}
_lock = threading.Lock()


def available_runtimes() -> list[str]:
    return sorted(RUNTIMES)


def runtime_class(name: str) -> type[ModelRuntime]:
    """The class registered under `name`, imported on first use."""
    try:
        module_name, _, class_name = RUNTIMES[name].partition(":")
    except KeyError:
        raise ValueError(f"unknown model runtime {name!r}; available: {', '.join(available_runtimes())}") from None
    return getattr(importlib.import_module(module_name), class_name)


def get_runtime(name: str, **options: Any) -> ModelRuntime:
    """The runtime `name` built with `options`, loaded once per process and kept."""
    key = (name, tuple(sorted((option, str(value)) for option, value in options.items())))
    with _lock:
        runtime = _loaded.get(key)
        if runtime is None:
            runtime = _loaded[key] = runtime_class(name)(**options)
        return runtime
