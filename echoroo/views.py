"""Views of the core app that are not API endpoints: the health check."""

from django.db import DatabaseError, connection
from django.http import JsonResponse
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
