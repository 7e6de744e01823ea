"""A job's configuration (seed-design.md §5.3's InferenceConfig plus BirdNET's options), validated in one place."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, fields
from typing import Any

MAX_BATCH_SIZE = 512
MAX_SPECIES_LIST = 10_000


class ConfigError(ValueError):
    """Invalid job settings: `errors` maps each bad field to what is wrong with it."""

    def __init__(self, errors: dict[str, str]):
        self.errors = errors
        super().__init__("; ".join(f"{field}: {message}" for field, message in errors.items()))


@dataclass(frozen=True)
class InferenceConfig:
    confidence_threshold: float = 0.5
    overlap: float = 0.0  # seconds, smaller than the model's window
    batch_size: int = 32
    use_gpu: bool = True
    use_metadata_filter: bool = True
    custom_species_list: tuple[str, ...] | None = None
    store_embeddings: bool = True
    store_predictions: bool = True
    # BirdNET only.
    sensitivity: float = 1.0
    species_filter_threshold: float = 0.03
    # Override the location and week used by the species filter (else: recording, site, dataset).
    latitude: float | None = None
    longitude: float | None = None
    week: int | None = None

    def as_json(self) -> dict[str, Any]:
        data = asdict(self)
        if self.custom_species_list is not None:
            data["custom_species_list"] = list(self.custom_species_list)
        return data

    @classmethod
    def from_json(cls, data: dict[str, Any] | None) -> InferenceConfig:
        """Read back what `as_json` stored (a job's `config`); settings it lacks take their defaults."""
        data = {name: value for name, value in (data or {}).items() if name in FIELD_NAMES}
        if data.get("custom_species_list") is not None:
            data["custom_species_list"] = tuple(data["custom_species_list"])
        return cls(**data)


FIELD_NAMES = tuple(field.name for field in fields(InferenceConfig))
# The settings only some models read: each runtime names those it reads (ModelRuntime.job_settings), and
# "use_gpu" counts where it can use a GPU (ModelRuntime.can_use_gpu). Every model reads the others.
MODEL_SETTINGS = frozenset(
    {"use_gpu", "sensitivity", "species_filter_threshold", "use_metadata_filter", "latitude", "longitude", "week"}
)


def parse_config(raw: dict[str, Any] | None, *, window_s: float) -> InferenceConfig:
    """Check every field of a job's config against a model with `window_s`-second windows.

    Raises ConfigError naming every bad field at once; unknown fields are errors too, so a
    typo ("confidence_treshold") is not silently ignored.
    """
    raw = dict(raw or {})
    errors: dict[str, str] = {}
    for name in raw:
        if name not in FIELD_NAMES:
            errors[name] = f"unknown setting; the settings are: {', '.join(FIELD_NAMES)}"
    values: dict[str, Any] = {}

    def number(name: str, low: float, high: float, *, low_open: bool = False, high_open: bool = False) -> None:
        if name not in raw or raw[name] is None and name in {"latitude", "longitude"}:
            return
        value = raw[name]
        if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
            errors[name] = f"must be a number, got {value!r}"
            return
        too_low = value <= low if low_open else value < low
        too_high = value >= high if high_open else value > high
        if too_low or too_high:
            left, right = "(" if low_open else "[", ")" if high_open else "]"
            errors[name] = f"must be in {left}{low:g}, {high:g}{right}, got {value:g}"
            return
        values[name] = float(value)

    def flag(name: str) -> None:
        if name in raw:
            if not isinstance(raw[name], bool):
                errors[name] = f"must be true or false, got {raw[name]!r}"
            else:
                values[name] = raw[name]

    number("confidence_threshold", 0, 1)
    number("overlap", 0, window_s, high_open=True)
    if "overlap" in errors and "must be in" in errors["overlap"]:
        errors["overlap"] = (
            f"must be at least 0 and smaller than the model's {window_s:g} s window, got {raw['overlap']}"
        )
    number("sensitivity", 0.5, 1.5)
    number("species_filter_threshold", 0, 1)
    number("latitude", -90, 90)
    number("longitude", -180, 180)
    for name in ("use_gpu", "use_metadata_filter", "store_embeddings", "store_predictions"):
        flag(name)

    if "batch_size" in raw:
        size = raw["batch_size"]
        if isinstance(size, bool) or not isinstance(size, int):
            errors["batch_size"] = f"must be a whole number, got {size!r}"
        elif not 1 <= size <= MAX_BATCH_SIZE:
            errors["batch_size"] = f"must be between 1 and {MAX_BATCH_SIZE}, got {size}"
        else:
            values["batch_size"] = size

    if raw.get("week") is not None:
        week = raw["week"]
        if isinstance(week, bool) or not isinstance(week, int) or not (week == -1 or 1 <= week <= 48):
            errors["week"] = f"must be 1-48 (BirdNET's four weeks a month) or -1 for the whole year, got {week!r}"
        else:
            values["week"] = week

    if raw.get("custom_species_list") is not None:
        species = raw["custom_species_list"]
        if not isinstance(species, list | tuple) or not all(isinstance(name, str) for name in species):
            errors["custom_species_list"] = "must be a list of species names"
        elif not [name for name in species if name.strip()]:
            errors["custom_species_list"] = "is empty: give at least one species, or leave it out"
        elif len(species) > MAX_SPECIES_LIST:
            errors["custom_species_list"] = f"has {len(species)} names; at most {MAX_SPECIES_LIST}"
        else:
            values["custom_species_list"] = tuple(dict.fromkeys(name.strip() for name in species if name.strip()))

    has_lat, has_lon = raw.get("latitude") is not None, raw.get("longitude") is not None
    if has_lat != has_lon and "latitude" not in errors and "longitude" not in errors:
        errors["latitude" if has_lon else "longitude"] = "latitude and longitude go together: give both or neither"
    if not values.get("store_embeddings", True) and not values.get("store_predictions", True):
        errors["store_predictions"] = "with store_embeddings also off, the job would store nothing"

    if errors:
        raise ConfigError(errors)
    return InferenceConfig(**values)
