"""How the validation services' errors become API errors: a 400 naming each field, {field: [message]}."""

from __future__ import annotations

from rest_framework import serializers, status
from rest_framework.response import Response

from validation import services
from validation.calibration import NoFit, TooFewVerdicts


def as_api_error(
    error: services.ValidationError, *, renamed: dict[str, str] | None = None
) -> serializers.ValidationError:
    """{field: [message]}; `renamed` maps the services' field names to the request's (e.g. file -> text)."""
    renamed = renamed or {}
    return serializers.ValidationError(
        {renamed.get(field, field): [message] for field, message in error.errors.items()}
    )


def first_message(error: services.ValidationError) -> str:
    """The message of a one-field error, for a serializer field to raise as its own."""
    return next(iter(error.errors.values()))


def calibration_refused(error: TooFewVerdicts | NoFit) -> Response:
    """400 naming "verdicts"; with too few, how many more of each are needed (as numbers, not error strings)."""
    body: dict = {"verdicts": [str(error)]}
    if isinstance(error, TooFewVerdicts):
        body.update(needed=error.needed, n_correct=error.n_correct, n_wrong=error.n_wrong)
    return Response(body, status=status.HTTP_400_BAD_REQUEST)
