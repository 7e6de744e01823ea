"""How the services' ConfigError becomes an API error: a 400 naming each field, or a 409 for a job's status.

The body has DRF's usual shape, {field: [message]}. The job's own fields are top-level keys
(`model_name`, `model_version`, `dataset_uuid`, `recording_uuid`); a setting of the job's config
is nested under "config", as DRF nests any object's errors:

    {"model_name": ["unknown model 'birdclef'; ..."], "config": {"overlap": ["must be at least 0 ..."]}}

A job that is not in the state an action needs ("only a pending job can be started") is a 409
Conflict whose body names "status".
"""

from __future__ import annotations

from collections.abc import Iterable

from rest_framework.exceptions import APIException, ValidationError

from echoroo.api.errors import Conflict
from inference.config import FIELD_NAMES, ConfigError

# The keys create_job uses for the job's own fields -> the request's field names.
JOB_FIELDS = {
    "model_name": "model_name",
    "model_version": "model_version",
    "dataset": "dataset_uuid",
    "recording": "recording_uuid",
}


def as_api_error(error: ConfigError, *, config_keys: Iterable[str] = ()) -> APIException:
    """The API error of a ConfigError; `config_keys` are the keys the request put in its config."""
    if "status" in error.errors:
        return Conflict({"status": [error.errors["status"]]})
    # A key the client put in its config is a config setting, even if it is spelled like a job
    # field ("model_name" inside config is reported as an unknown setting, under config).
    config_keys = set(config_keys) | set(FIELD_NAMES)
    body: dict = {}
    for key, message in error.errors.items():
        if key in config_keys or key not in JOB_FIELDS:
            body.setdefault("config", {})[key] = [message]
        else:
            body[JOB_FIELDS[key]] = [message]
    return ValidationError(body)
