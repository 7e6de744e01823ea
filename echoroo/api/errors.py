"""API errors shared by the apps' endpoints, and the one exception handler that answers the domain's errors."""

from django.core.exceptions import PermissionDenied as DjangoPermissionDenied
from rest_framework import status
from rest_framework.exceptions import APIException, PermissionDenied, ValidationError
from rest_framework.views import exception_handler as drf_exception_handler

from echoroo.errors import DomainError


class Conflict(APIException):
    """409: the thing exists, but its state does not allow this now (a job's status, a job running on it)."""

    status_code = status.HTTP_409_CONFLICT
    default_detail = "Not in a state that allows this."
    default_code = "conflict"


def exception_handler(exc, context):
    """DRF's handler, which also answers a service's errors: a DomainError is a 409 for a conflict, else a 400,
    both {field: [message]}; Django's PermissionDenied a 403 with the service's own words."""
    if isinstance(exc, DomainError):
        body = {field: [message] for field, message in exc.errors.items()}
        exc = Conflict(body) if exc.conflict else ValidationError(body)
    elif isinstance(exc, DjangoPermissionDenied) and str(exc):
        exc = PermissionDenied(str(exc))
    return drf_exception_handler(exc, context)
