"""The HTML pages fuzzed through their query strings: never a 500; a NUL (%00) is a 400 naming its parameter.

Every page route is asked with real rows in its path (a real recording with a job's detections, its
dataset, clips and a threshold set), with generated values for the parameters the pages read.
"""

from __future__ import annotations

import re
import uuid
from urllib.parse import quote, urlencode

import pytest
from django.test import Client
from django.urls import URLPattern, URLResolver, get_resolver
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

pytestmark = pytest.mark.django_db

# Every name a page reads from its query string (grep request.GET, the forms and the filters).
PARAMS = (
    "job thresholds species min_score page clip annotation status recording dataset model against sound_event "
    "target after before last site by top timezone download chart_site sort verified start end label clips blind "
    "from to q order context width min_freq max_freq recorded_after recorded_before min_similarity limit "
    "exclude_own_recording"
).split()

# Hypothesis spreads these over the routes: about ten queries a page.
PAGE_EXAMPLES = 500

ODD_VALUES = ["", "-1", "0", "1e400", "nan", "inf", "-0", "99999999999999999999", "2026-13-45", "1;drop", "é", "\n"]


def page_routes(patterns=None, prefix: str = "") -> list[str]:
    """Each route outside the API and the admin, as written in the URLconf."""
    routes = []
    for entry in patterns if patterns is not None else get_resolver().url_patterns:
        route = str(entry.pattern)
        if route.startswith(("api/", "admin/")):
            continue
        if isinstance(entry, URLResolver):
            routes += page_routes(entry.url_patterns, prefix + route)
        elif isinstance(entry, URLPattern):
            routes.append(prefix + route)
    return routes


ROUTES = page_routes()


@pytest.fixture
def pages(field_recording, django_user_model):
    """A logged-in superuser, and each route with the uuid of a real row of its kind in its path."""
    from echoroo.models import SoundEvent
    from inference.services import model_run_for
    from tests.pages.detections import job_with_detections
    from validation.models import ThresholdSet

    admin = django_user_model.objects.create_superuser("prober", password="prober-password-1")
    run = model_run_for("birdnet")
    robin = "Turdus migratorius_American Robin"
    job = job_with_detections(run, {field_recording: {3.0 * i: {robin: 0.3 + i / 20} for i in range(10)}})
    clip = field_recording.clips.order_by("start_time").first()
    event = SoundEvent.objects.create(recording=field_recording, start_time=1, end_time=2)
    rows = {
        "recording_uuid": field_recording.uuid,
        "dataset_uuid": field_recording.dataset.uuid,
        "job_uuid": job.uuid,
        "uuid": clip.uuid,
        "set_uuid": ThresholdSet.objects.create(name="Loose", default_threshold=0.2).uuid,
        "model_run_uuid": run.uuid,
    }

    def concrete(route: str) -> str:
        if route.startswith("recordings/<uuid:uuid>"):
            return "/" + route.replace("<uuid:uuid>", str(field_recording.uuid))
        return "/" + re.sub(r"<\w+:(\w+)>", lambda match: str(rows.get(match[1], uuid.uuid4())), route)

    client = Client()
    client.force_login(admin)
    values = [*ODD_VALUES, robin, "Turdus migratorius", str(job.uuid), str(clip.uuid), str(event.uuid), "Loose"]
    return client, concrete, values


def test_the_pages_fuzzed_include_the_recording_page_and_the_charts():
    assert "recordings/<uuid:recording_uuid>/" in ROUTES
    assert "datasets/<uuid:dataset_uuid>/charts/activity.png" in ROUTES and "search/" in ROUTES
    assert len(ROUTES) > 35


def test_a_nul_in_any_parameter_of_any_page_is_a_400_naming_it(pages):
    client, concrete, _ = pages
    for path in map(concrete, ROUTES):
        for name in PARAMS:
            response = client.get(f"{path}?{name}=%00")
            assert response.status_code == 400, (path, name, response.status_code)
            assert f"the query string parameter '{name}' contains a NUL character" in response.content.decode()


def test_the_recording_page_refuses_a_nul_in_its_filters_and_still_shows_good_ones(pages, field_recording):
    client, concrete, _ = pages
    path = concrete("recordings/<uuid:recording_uuid>/")
    for query in ["species=%00", "species=Turdus%00migratorius", "min_score=0.5&thresholds=%00", "%00=1"]:
        response = client.get(f"{path}?{query}")
        assert response.status_code == 400, query
        assert response["Content-Type"].startswith("text/plain") and "NUL character (%00)" in response.content.decode()
    shown = client.get(path, {"species": "Turdus migratorius_American Robin", "min_score": "0.5"})
    assert shown.status_code == 200 and b"American Robin" in shown.content


def test_a_nul_in_a_posted_form_is_a_400_and_creates_no_job(pages, field_recording):
    from inference.models import InferenceJob

    client, _, _ = pages
    before = InferenceJob.objects.count()
    form = {"target": "recording", "recording": str(field_recording.uuid), "model_name": "birdnet\x00"}
    response = client.post("/jobs/new/", urlencode(form), content_type="application/x-www-form-urlencoded")
    assert response.status_code == 400
    assert "the form parameter 'model_name' contains a NUL character" in response.content.decode()
    assert InferenceJob.objects.count() == before


@pytest.mark.slow
def test_any_query_string_on_any_page_is_answered_without_a_server_error(pages):
    client, concrete, values = pages

    @settings(max_examples=PAGE_EXAMPLES, deadline=None, suppress_health_check=list(HealthCheck), derandomize=True)
    @given(
        st.sampled_from(ROUTES).map(concrete),
        st.dictionaries(
            st.sampled_from(PARAMS),
            st.sampled_from(values) | st.text(max_size=12) | st.floats().map(repr),
            max_size=4,
        ),
    )
    def probe(path: str, query: dict[str, str]) -> None:
        encoded = "&".join(f"{quote(name)}={quote(value)}" for name, value in query.items())
        response = client.get(f"{path}?{encoded}")
        assert response.status_code < 500, (path, query, response.content[:300])
        if any("\x00" in value for value in query.values()):
            assert response.status_code == 400

    probe()
