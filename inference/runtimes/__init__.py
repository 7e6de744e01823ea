"""The model runtimes: which exist, how each is built from settings and a job's config, one loaded instance per process.

A new model is one module implementing `ModelRuntime` plus one line in `RUNTIMES`; nothing above this
package names a model. Runtimes are imported only when asked for, so importing this package loads
neither TensorFlow nor LiteRT. Nor does it import Django: the caller passes its settings in.
"""

from __future__ import annotations

import importlib
import threading
from pathlib import Path
from typing import TYPE_CHECKING, Any

from inference.runtimes.base import Label, ModelRuntime

if TYPE_CHECKING:
    from inference.config import InferenceConfig

__all__ = [
    "DEFAULT_RUNTIME",
    "RUNTIMES",
    "Label",
    "ModelRuntime",
    "available_runtimes",
    "build_runtime",
    "get_runtime",
    "is_loaded",
    "prepare_runtime",
    "runtime_class",
]

# name -> "module:class"
RUNTIMES: dict[str, str] = {
    "birdnet": "inference.runtimes.birdnet:BirdNetRuntime",
    "perch": "inference.runtimes.perch:PerchRuntime",
}
# The model offered first where people pick one.
DEFAULT_RUNTIME = "birdnet"

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
    key = _key(name, options)
    with _lock:
        runtime = _loaded.get(key)
        if runtime is None:
            runtime = _loaded[key] = runtime_class(name)(**options)
        return runtime


def build_runtime(name: str, settings: Any, config: InferenceConfig | None = None) -> ModelRuntime:
    """The runtime `name` as the project's `settings` and a job's `config` ask for it, loaded once per process."""
    return get_runtime(name, **_options(name, settings, config))


def is_loaded(name: str, settings: Any, config: InferenceConfig | None = None) -> bool:
    """Whether `build_runtime` with these arguments returns a runtime this process has loaded already."""
    return _key(name, _options(name, settings, config)) in _loaded


def prepare_runtime(name: str, settings: Any, config: InferenceConfig | None = None) -> list[Path]:
    """Make the files `build_runtime` would derive from the model (see ModelRuntime.prepare), without loading it."""
    return runtime_class(name).prepare(**_options(name, settings, config))


def _options(name: str, settings: Any, config: InferenceConfig | None) -> dict[str, Any]:
    if config is None:
        from inference.config import InferenceConfig

        config = InferenceConfig()
    return runtime_class(name).options(settings, config)


def _key(name: str, options: dict[str, Any]) -> tuple:
    return (name, tuple(sorted((option, str(value)) for option, value in options.items())))
