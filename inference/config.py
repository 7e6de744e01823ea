"""A job's configuration (seed-design.md §5.3's InferenceConfig plus BirdNET's options): defined once, here.

Each setting's default, meaning and allowed values are its field's definition (`setting`); parse_config
checks them, and the API schema, the job form and the infer command read them from here.
"""

from __future__ import annotations

import math
from dataclasses import Field, asdict, dataclass, field, fields
from typing import Any

from echoroo.errors import DomainError

MAX_BATCH_SIZE = 512
MAX_SPECIES_LIST = 10_000


class ConfigError(DomainError):
    """Invalid job settings: `errors` maps each bad field to what is wrong with it."""


def setting(default: Any, help_text: str, kind: str, **rules: Any) -> Any:
    """One field of InferenceConfig: its default, what it means to people, and what parse_config allows.

    `kind` is "number" (with `low`/`high`, both allowed, and `below_window`: less than the model's
    window), "whole" (with `low`/`high`, or `choices`), "flag" or "names". A default of None means the
    setting may be null (left to the recording, or unused).
    """
    return field(default=default, metadata={"help": help_text, "kind": kind, **rules})


# BirdNET's weeks: four a month, 1-48; -1 is the whole year.
WEEKS = (-1, *range(1, 49))


@dataclass(frozen=True)
class InferenceConfig:
    # BirdNET-Analyzer's and birdnetlib's default (min_conf 0.1), and the floor of the stored model output
    # (PREDICTION_FLOOR): a job at the default selects from what is stored and matches the official analyzer.
    confidence_threshold: float = setting(0.1, "Keep the species scored at least this", "number", low=0, high=1)
    overlap: float = setting(0.0, "Seconds shared by consecutive windows", "number", low=0, below_window=True)
    batch_size: int = setting(32, "Windows per model call", "whole", low=1, high=MAX_BATCH_SIZE)
    use_gpu: bool = setting(True, "Use a GPU when the worker has one", "flag")
    use_metadata_filter: bool = setting(
        True, "Keep only the species likely at the recording's place and week (the location filter)", "flag"
    )
    custom_species_list: tuple[str, ...] | None = setting(
        None,
        "Keep only these species (replaces the location filter): each a label ('Bonasa umbellus_Ruffed Grouse'), "
        "a scientific name, a common name or an eBird code; stored as the model's labels",
        "names",
        high=MAX_SPECIES_LIST,
    )
    store_embeddings: bool = setting(True, "Store each window's embedding", "flag")
    store_predictions: bool = setting(
        True, "Store the scores and detections (at least one of the two store_ settings)", "flag"
    )
    # BirdNET only.
    sensitivity: float = setting(
        1.0, "The factor on the model's logit: higher, more detections at a threshold", "number", low=0.5, high=1.5
    )
    species_filter_threshold: float = setting(
        0.03,
        "The location filter keeps the species at least this likely at the place and week",
        "number",
        low=0,
        high=1,
    )
    # Override the location and week used by the species filter (else: recording, site, dataset).
    latitude: float | None = setting(
        None,
        "With longitude: the place for the location filter, instead of the recording's, site's or dataset's",
        "number",
        low=-90,
        high=90,
    )
    longitude: float | None = setting(None, "With latitude", "number", low=-180, high=180)
    week: int | None = setting(
        None,
        "BirdNET's week for the location filter (four a month; -1 is the whole year), instead of the recording's date",
        "whole",
        choices=WEEKS,
    )

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


SETTINGS: tuple[Field, ...] = fields(InferenceConfig)
FIELD_NAMES = tuple(setting.name for setting in SETTINGS)
# The settings only some models read: each runtime names those it reads (ModelRuntime.job_settings), and
# "use_gpu" counts where it can use a GPU (ModelRuntime.can_use_gpu). Every model reads the others.
MODEL_SETTINGS = frozenset(
    {"use_gpu", "sensitivity", "species_filter_threshold", "use_metadata_filter", "latitude", "longitude", "week"}
)


def allowed(setting: Field) -> str:
    """The values a setting takes, in words ("0 to 1"), from its definition."""
    rules = setting.metadata
    if rules.get("choices") == WEEKS:
        return "1 to 48, or -1"
    if rules.get("below_window"):
        return f"at least {rules['low']:g}, less than the model's window"
    if rules["kind"] == "names":
        return f"1 to {rules['high']:,} names"
    if "low" in rules:
        return f"{rules['low']:g} to {rules['high']:g}"
    return ""


def help_of(name: str) -> str:
    """What a setting means and the values it takes: the help the API schema, the job form and `infer` show."""
    setting = SETTINGS[FIELD_NAMES.index(name)]
    values = allowed(setting)
    return f"{setting.metadata['help']} ({values})." if values else f"{setting.metadata['help']}."


def parse_config(raw: dict[str, Any] | None, *, window_s: float) -> InferenceConfig:
    """Check every field of a job's config against a model with `window_s`-second windows.

    Raises ConfigError naming every bad field at once; unknown fields are errors too, so a
    typo ("confidence_treshold") is not silently ignored. What each field allows is its definition
    in InferenceConfig (`setting`).
    """
    raw = dict(raw or {})
    errors: dict[str, str] = {}
    for name in raw:
        if name not in FIELD_NAMES:
            errors[name] = f"unknown setting; the settings are: {', '.join(FIELD_NAMES)}"
    values: dict[str, Any] = {}
    for setting in SETTINGS:
        if setting.name not in raw or raw[setting.name] is None and setting.default is None:
            continue
        check = CHECKS[setting.metadata["kind"]]
        problem = check(raw[setting.name], setting.metadata, window_s)
        if isinstance(problem, str):
            errors[setting.name] = problem
        else:
            values[setting.name] = problem.value

    has_lat, has_lon = raw.get("latitude") is not None, raw.get("longitude") is not None
    if has_lat != has_lon and "latitude" not in errors and "longitude" not in errors:
        errors["latitude" if has_lon else "longitude"] = "latitude and longitude go together: give both or neither"
    if not values.get("store_embeddings", True) and not values.get("store_predictions", True):
        errors["store_predictions"] = "with store_embeddings also off, the job would store nothing"

    if errors:
        raise ConfigError(errors)
    return InferenceConfig(**values)


@dataclass(frozen=True)
class Accepted:
    value: Any


def _number(value: Any, rules: dict, window_s: float) -> Accepted | str:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        return f"must be a number, got {value!r}"
    if rules.get("below_window"):
        if not rules["low"] <= value < window_s:
            return (
                f"must be at least {rules['low']:g} and smaller than the model's {window_s:g} s window, got {value:g}"
            )
    elif not rules["low"] <= value <= rules["high"]:
        return f"must be in [{rules['low']:g}, {rules['high']:g}], got {value:g}"
    return Accepted(float(value))


def _whole(value: Any, rules: dict, window_s: float) -> Accepted | str:
    if isinstance(value, bool) or not isinstance(value, int):
        return f"must be a whole number, got {value!r}"
    if "choices" in rules:
        if value not in rules["choices"]:
            return f"must be 1-48 (BirdNET's four weeks a month) or -1 for the whole year, got {value!r}"
    elif not rules["low"] <= value <= rules["high"]:
        return f"must be between {rules['low']} and {rules['high']}, got {value}"
    return Accepted(value)


def _flag(value: Any, rules: dict, window_s: float) -> Accepted | str:
    return Accepted(value) if isinstance(value, bool) else f"must be true or false, got {value!r}"


def _names(value: Any, rules: dict, window_s: float) -> Accepted | str:
    if not isinstance(value, list | tuple) or not all(isinstance(name, str) for name in value):
        return "must be a list of species names"
    names = tuple(dict.fromkeys(name.strip() for name in value if name.strip()))
    if not names:
        return "is empty: give at least one species, or leave it out"
    if len(value) > rules["high"]:
        return f"has {len(value)} names; at most {rules['high']}"
    return Accepted(names)


CHECKS = {"number": _number, "whole": _whole, "flag": _flag, "names": _names}
