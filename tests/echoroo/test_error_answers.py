"""Error answers of a server others reach: no debug page for another machine, a 503 while the database is gone."""

from __future__ import annotations

import json

import psycopg
import pytest
from django.core.handlers.exception import convert_exception_to_response
from django.db import connection
from django.test import RequestFactory

from echoroo.middleware import DatabaseUnavailable, DebugPagesForThisMachineOnly

ELSEWHERE = "192.0.2.7"  # an address of another machine (TEST-NET-1)
DEBUG_PAGE = b"DEBUG = True"


@pytest.fixture
def debug(settings):
    settings.DEBUG = True


@pytest.mark.django_db
def test_a_404_shows_the_debug_page_to_this_machine_only(debug, client):
    here = client.get("/no-such-page/")
    assert here.status_code == 404 and DEBUG_PAGE in here.content
    for headers in ({"REMOTE_ADDR": ELSEWHERE}, {"HTTP_X_FORWARDED_FOR": ELSEWHERE}):  # direct, or through a proxy
        there = client.get("/no-such-page/", **headers)
        assert there.status_code == 404
        assert DEBUG_PAGE not in there.content and b"URLconf" not in there.content and b"admin/" not in there.content


@pytest.mark.django_db
def test_an_api_404_for_another_machine_is_the_apis_json(debug, client):
    response = client.get("/api/v1/no-such-endpoint/", REMOTE_ADDR=ELSEWHERE)
    assert response.status_code == 404
    assert response.json() == {"detail": "not found: no API endpoint or object at /api/v1/no-such-endpoint/"}


@pytest.mark.parametrize("path", ["/", "/api/v1/datasets/"])
def test_a_host_name_not_allowed_is_named_with_the_setting_and_no_debug_page(debug, settings, client, path):
    settings.ALLOWED_HOSTS = ["127.0.0.1", "localhost"]
    response = client.get(path, HTTP_HOST="echoroo.lab.example", REMOTE_ADDR=ELSEWHERE)
    assert response.status_code == 400
    assert DEBUG_PAGE not in response.content and b"Traceback" not in response.content
    expected = "this server does not answer to the name 'echoroo.lab.example'; its operator can add it to ALLOWED_HOSTS"
    assert expected in response.content.decode()


def failing(exception: Exception):
    """A view (or a middleware) that raises, wrapped as Django wraps each one: its exception becomes its response."""

    def view(request):
        raise exception

    return convert_exception_to_response(view)


def test_a_server_error_shows_the_traceback_to_this_machine_only(debug):
    handler = DebugPagesForThisMachineOnly(failing(ValueError("a bug")))
    here = handler(RequestFactory().get("/jobs/"))
    assert here.status_code == 500 and b"a bug" in here.content
    there = handler(RequestFactory().get("/jobs/", REMOTE_ADDR=ELSEWHERE))
    assert there.status_code == 500
    assert b"a bug" not in there.content and DEBUG_PAGE not in there.content
    api = handler(RequestFactory().get("/api/v1/datasets/", REMOTE_ADDR=ELSEWHERE))
    assert api.status_code == 500 and "server error" in json.loads(api.content)["detail"]


def terminate_this_connection() -> None:
    """End the Django connection's server process from a second connection, as a database restart does."""
    connection.ensure_connection()
    pid = connection.connection.info.backend_pid
    params = connection.get_connection_params()
    wanted = {key: params[key] for key in ("host", "port", "user", "password") if params.get(key)}
    with psycopg.connect(**wanted, dbname=params.get("dbname") or "postgres", autocommit=True) as other:
        assert other.execute("SELECT pg_terminate_backend(%s, 5000)", [pid]).fetchone() == (True,)


@pytest.fixture
def broken_connection(transactional_db):
    """The connection the views use, unusable; a fresh one afterwards for the test database's teardown."""
    yield terminate_this_connection
    connection.close()


def assert_unavailable(response, *, api: bool) -> None:
    assert response.status_code == 503
    assert response["Retry-After"] == "5"
    if api:
        assert json.loads(response.content) == {"detail": "database unavailable: try again in 5 s"}
    else:
        assert response["Content-Type"].startswith("text/html")
        assert b"Database unavailable" in response.content and b"Traceback" not in response.content


def test_the_api_answers_503_with_retry_after_when_its_database_connection_dies(broken_connection, api_client, debug):
    broken_connection()
    assert_unavailable(api_client.get("/api/v1/datasets/"), api=True)


def test_a_page_answers_a_plain_503_when_its_database_connection_dies(broken_connection, client, user, debug):
    client.force_login(user)
    broken_connection()
    assert_unavailable(client.get("/jobs/"), api=False)


def test_an_unreachable_database_answers_503_and_the_next_request_after_it_is_back_succeeds(
    transactional_db, api_client, client, user, debug
):
    client.force_login(user)
    connection.close()
    original = connection.settings_dict.get("PORT")
    # The same server on a port nothing listens on: every connection is refused, as while it is down.
    connection.settings_dict["PORT"] = "1"
    try:
        assert_unavailable(api_client.get("/api/v1/datasets/"), api=True)
        assert_unavailable(client.get("/jobs/", REMOTE_ADDR=ELSEWHERE), api=False)
    finally:
        connection.settings_dict["PORT"] = original
    # Nothing restarted: the next request connects again.
    assert api_client.get("/api/v1/datasets/").status_code == 200


def test_a_middleware_whose_database_died_answers_503_too(broken_connection):
    broken_connection()

    def save_session(request):  # e.g. SessionMiddleware saving at the end of a request
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")

    handler = DatabaseUnavailable(convert_exception_to_response(save_session))
    assert_unavailable(handler(RequestFactory().get("/api/v1/datasets/")), api=True)


def test_a_failed_query_on_a_working_database_stays_a_500(transactional_db):
    def slow_query(request):
        with connection.cursor() as cursor:
            cursor.execute("SET statement_timeout = 1")
            try:
                cursor.execute("SELECT pg_sleep(1)")
            finally:
                cursor.execute("RESET statement_timeout")

    response = DatabaseUnavailable(convert_exception_to_response(slow_query))(RequestFactory().get("/api/v1/datasets/"))
    assert response.status_code == 500
