"""API errors shared by the apps' endpoints."""

from rest_framework import status
from rest_framework.exceptions import APIException


class Conflict(APIException):
    """409: the thing exists, but its state does not allow this now (a job's status, a job running on it)."""

    status_code = status.HTTP_409_CONFLICT
    default_detail = "Not in a state that allows this."
    default_code = "conflict"
