"""Middleware refusing a NUL character in a query string or a form, before any view reads it.

PostgreSQL stores no NUL in text, so a filter such as ?species=%00 reaching a query is a server
error; no name, species, path or number of this application holds one. Multipart bodies are left
to the forms and serializers (which refuse NUL too): reading them here would read a whole upload
before the view can refuse it by size.
"""

from collections.abc import Callable

from django.http import HttpRequest, HttpResponse, HttpResponseBadRequest, JsonResponse

FORM = "application/x-www-form-urlencoded"


class RefuseNulMiddleware:
    """400 naming the parameter when a query string or url-encoded form holds a NUL (%00)."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]):
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        refused = first_nul(request.GET, "query string")
        if refused is None and request.method == "POST" and request.content_type == FORM:
            refused = first_nul(request.POST, "form")
        if refused is not None:
            return bad_request(request, refused)
        return self.get_response(request)


def first_nul(values, where: str) -> tuple[str | None, str] | None:
    """(the parameter, what is wrong) of the first parameter holding a NUL, or None."""
    for name, given in values.lists():
        if "\x00" in name:
            return None, f"a parameter name in the {where} contains a NUL character (%00)"
        if any("\x00" in value for value in given):
            return name, f"the {where} parameter {name!r} contains a NUL character (%00)"
    return None


def bad_request(request: HttpRequest, refused: tuple[str | None, str]) -> HttpResponse:
    name, problem = refused
    if request.path.startswith("/api/"):
        # As the API answers any bad field: {field: [message]}; a bad name has no field to name.
        body = {name: [problem]} if name else {"detail": f"bad request: {problem}"}
        return JsonResponse(body, status=400)
    return HttpResponseBadRequest(f"Bad request: {problem}.\n", content_type="text/plain; charset=utf-8")
