"""API errors shared by the apps' endpoints, and the one exception handler that answers the domain's errors."""

from rest_framework import status
from rest_framework.exceptions import APIException, ValidationError
from rest_framework.views import exception_handler as drf_exception_handler

from echoroo.errors import DomainError


class Conflict(APIException):
    """409: the thing exists, but its state does not allow this now (a job's status, a job running on it)."""

    status_code = status.HTTP_409_CONFLICT
    default_detail = "Not in a state that allows this."
    default_code = "conflict"


def exception_handler(exc, context):
    """DRF's handler, which also answers a service's DomainError: 409 for a conflict, else 400 naming the fields."""
    if isinstance(exc, DomainError):
        if exc.conflict:
            exc = Conflict(" ".join(exc.errors.values()))
        else:
            exc = ValidationError({field: [message] for field, message in exc.errors.items()})
    return drf_exception_handler(exc, context)
