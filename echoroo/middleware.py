"""Two answers Django gets wrong for a server others reach: debug pages to any machine, and a 500 when the database
is down."""

from __future__ import annotations

import ipaddress
import logging
import sys

from django.conf import settings
from django.core.exceptions import MiddlewareNotUsed
from django.core.signals import got_request_exception
from django.db import InterfaceError, OperationalError, connection
from django.dispatch import receiver
from django.http import HttpRequest, HttpResponse

from echoroo import views

logger = logging.getLogger(__name__)

DATABASE_GONE = (OperationalError, InterfaceError)
# Headers a reverse proxy adds: behind one, a request from 127.0.0.1 comes from anywhere.
PROXY_HEADERS = ("HTTP_X_FORWARDED_FOR", "HTTP_FORWARDED", "HTTP_X_REAL_IP")
# Every page Django renders because DEBUG is on (technical_404.html, technical_500.html and .txt) says this.
TECHNICAL_PAGE_MARK = b"DEBUG = True"


def from_this_machine(request: HttpRequest) -> bool:
    """Whether the request came over loopback, straight from a client on this machine (not through a proxy)."""
    if any(header in request.META for header in PROXY_HEADERS):
        return False
    try:
        return ipaddress.ip_address(request.META.get("REMOTE_ADDR", "")).is_loopback
    except ValueError:  # a Unix socket (a proxy in front), or nothing
        return False


class DebugPagesForThisMachineOnly:
    """With DEBUG on, Django's error pages (traceback, settings, every URL) go only to clients on this machine; any
    other gets the answer it would get with DEBUG off (views.not_found, bad_request, server_error)."""

    def __init__(self, get_response) -> None:
        if not settings.DEBUG:
            raise MiddlewareNotUsed
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        response = self.get_response(request)
        if from_this_machine(request) or not is_technical_page(response):
            return response
        if response.status_code == 404:
            return views.not_found(request)
        if response.status_code == 400:
            return views.bad_request(request)
        return views.server_error(request)


def is_technical_page(response: HttpResponse) -> bool:
    return response.status_code >= 400 and not response.streaming and TECHNICAL_PAGE_MARK in response.content


class DatabaseUnavailable:
    """While the database is unreachable (a restart, an outage), a request answers 503 with Retry-After: JSON under
    /api/, a plain page elsewhere; never a 500. Django reconnects by itself at a later request once it is back."""

    def __init__(self, get_response) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        response = self.get_response(request)
        # An error in a middleware below (the session saved at the end) is a response already; its exception is kept.
        if response.status_code >= 500 and database_unreachable(getattr(request, "_uncaught_exception", None)):
            return self._unavailable(request, request._uncaught_exception)
        return response

    def process_exception(self, request: HttpRequest, exception: Exception) -> HttpResponse | None:
        if database_unreachable(exception):
            return self._unavailable(request, exception)
        return None

    @staticmethod
    def _unavailable(request: HttpRequest, exception: BaseException) -> HttpResponse:
        logger.warning("database unavailable (%s %s): %s", request.method, request.path, str(exception).strip())
        return views.database_unavailable(request)


def database_unreachable(exception: BaseException | None) -> bool:
    """Whether `exception` is the database gone (no connection, or a dead one), not a failed query."""
    if isinstance(exception, InterfaceError):
        return True
    if not isinstance(exception, OperationalError):
        return False
    return connection.connection is None or not connection.is_usable()


@receiver(got_request_exception)
def _keep_the_exception(sender, request: HttpRequest | None = None, **kwargs) -> None:
    """Django turns an exception into a response where it is raised; keep it for DatabaseUnavailable to see."""
    if request is not None:
        request._uncaught_exception = sys.exc_info()[1]
