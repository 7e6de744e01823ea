"""Nobody gets in where they don't belong: every URL needs a login but the login page and the health check."""

from __future__ import annotations

import re
import uuid

import pytest
from django.test import Client
from django.urls import URLPattern, URLResolver, get_resolver

pytestmark = pytest.mark.django_db

# favicon.ico: a redirect to the static icon, which browsers ask for before anyone logs in.
PUBLIC = {"healthz", "login/", "api/schema/", "api/docs/", "favicon.ico"}
# Login and logout of DRF's browsable API (its own login page) are public by nature.
PUBLIC_PREFIXES = ("api/v1/auth/",)


def every_route(patterns=None, prefix: str = "") -> list[str]:
    """Each URL pattern of the project as a concrete path, with sample values for its parameters."""
    paths = []
    for entry in patterns if patterns is not None else get_resolver().url_patterns:
        route = str(entry.pattern).lstrip("^").replace("\\Z", "").rstrip("$")
        if isinstance(entry, URLResolver):
            if route.startswith("admin/"):
                continue  # Django's admin: checked below, by its own login redirect
            paths += every_route(entry.url_patterns, prefix + route)
        elif isinstance(entry, URLPattern):
            paths.append(prefix + route)
    concrete = []
    for path in paths:
        if "(?P<format>" in path:
            continue  # DRF's ".json" suffix twins of the same views
        path = re.sub(r"\(\?P<\w+>[^)]*\)", str(uuid.uuid4()), path)
        path = re.sub(r"<(?:\w+:)?\w+>", str(uuid.uuid4()), path)
        path = re.sub(r"\(\?P<format>[^)]*\)\??", "", path)
        if "(" in path or "[" in path:
            continue
        concrete.append(path)
    return sorted(set(concrete))


def is_public(path: str) -> bool:
    return path in PUBLIC or path.startswith(PUBLIC_PREFIXES)


def refused(response) -> bool:
    if response.status_code in (401, 403):
        return True
    return response.status_code == 302 and "login" in response["Location"]


def test_the_project_has_many_routes_to_check():
    routes = [path for path in every_route() if not is_public(path)]
    assert len(routes) > 50
    assert "api/v1/clip-predictions/" in routes and "search/" in routes
    assert any(path.startswith("api/v1/datasets/") and len(path) > len("api/v1/datasets/") for path in routes)


@pytest.mark.parametrize("method", ["get", "post", "delete"])
def test_every_url_refuses_anonymous_visitors(method):
    client = Client()
    let_in = []
    for path in every_route():
        if is_public(path):
            continue
        response = getattr(client, method)("/" + path)
        if response.status_code in (404, 405):
            continue  # no such object or method: nothing was shown or done
        if not refused(response):
            let_in.append(f"{method.upper()} /{path} -> {response.status_code}")
    assert let_in == []


def test_the_admin_sends_anonymous_visitors_to_its_login():
    response = Client().get("/admin/echoroo/recording/")
    assert response.status_code == 302 and "/admin/login/" in response["Location"]


def test_the_public_urls_are_the_login_page_and_the_health_check():
    client = Client()
    assert client.get("/healthz").status_code == 200
    assert client.get("/login/").status_code == 200


def test_forms_need_a_csrf_token(user):
    client = Client(enforce_csrf_checks=True)
    client.force_login(user)
    assert client.post("/api/v1/datasets/", {"name": "x"}).status_code == 403
    assert client.post("/jobs/new/", {}).status_code == 403
    anonymous = Client(enforce_csrf_checks=True)
    assert anonymous.post("/login/", {"username": "ecologist", "password": "pw-ecologist-1"}).status_code == 403
