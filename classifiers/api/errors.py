"""How a ClassifierError becomes an API error: a 400 naming each field, or a 409 for a state ("status")."""

from __future__ import annotations

from rest_framework.exceptions import APIException, ValidationError

from classifiers.errors import ClassifierError
from echoroo.api.errors import Conflict


def as_api_error(error: ClassifierError, *, renamed: dict[str, str] | None = None) -> APIException:
    """{field: [message]}; `renamed` maps the services' names to the request's (e.g. model_run -> source_uuid)."""
    if "status" in error.errors:
        return Conflict({"status": [error.errors["status"]]})
    renamed = renamed or {}
    return ValidationError({renamed.get(field, field): [message] for field, message in error.errors.items()})
