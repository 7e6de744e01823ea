"""Views of the core app that are not API endpoints: the health check, and the error answers."""

from django.core.exceptions import DisallowedHost
from django.db import DatabaseError, connection
from django.http import HttpResponse, JsonResponse
from django.views import defaults
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET


@never_cache
@require_GET
def healthz(request):
    """200 when the database answers, 503 otherwise; no login needed, for load balancers."""
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
            cursor.fetchone()
    except (DatabaseError, RuntimeError) as error:
        return JsonResponse({"status": "unavailable", "database": str(error).splitlines()[0]}, status=503)
    return JsonResponse({"status": "ok", "database": "ok"})


def not_found(request, exception=None):
    """404: JSON that says so under /api/, Django's page elsewhere."""
    if request.path.startswith("/api/"):
        return JsonResponse({"detail": f"not found: no API endpoint or object at {request.path}"}, status=404)
    return defaults.page_not_found(request, exception)


def server_error(request):
    """500: JSON under /api/ (a client can read it), Django's page elsewhere."""
    if request.path.startswith("/api/"):
        return JsonResponse(
            {"detail": "server error: the request could not be completed; it has been logged"}, status=500
        )
    return defaults.server_error(request)


def bad_request(request, exception=None):
    """400: JSON under /api/; a host name this server does not answer to is named, with the setting that adds it."""
    if exception is None:  # called for a debug page that another machine must not see: say what it was about
        try:
            request.get_host()
        except DisallowedHost as error:
            exception = error
    if isinstance(exception, DisallowedHost):
        host = request.META.get("HTTP_HOST", "")[:100]
        message = (
            f"bad request: this server does not answer to the name {host!r}; "
            "its operator can add it to ALLOWED_HOSTS (comma-separated) and restart it"
        )
        if request.path.startswith("/api/"):
            return JsonResponse({"detail": message}, status=400)
        return HttpResponse("B" + message[1:], status=400, content_type="text/plain; charset=utf-8")
    if request.path.startswith("/api/"):
        return JsonResponse({"detail": f"bad request: {exception or 'the request could not be read'}"}, status=400)
    return defaults.bad_request(request, exception)


# How long a client waits before asking again while the database is unreachable (a restart takes a second or two).
DATABASE_RETRY_AFTER_S = 5


def database_unavailable(request):
    """503 while the database is unreachable: JSON under /api/, a plain page elsewhere; both say when to retry."""
    if request.path.startswith("/api/"):
        response = JsonResponse(
            {"detail": f"database unavailable: try again in {DATABASE_RETRY_AFTER_S} s"}, status=503
        )
    else:
        response = HttpResponse(
            "<!doctype html><title>Database unavailable</title><h1>Database unavailable</h1>"
            "<p>The database is not answering (a restart, or an outage). Reload this page in a few seconds.</p>",
            status=503,
        )
    response["Retry-After"] = str(DATABASE_RETRY_AFTER_S)
    return response
