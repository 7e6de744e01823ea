"""Hostile requests the schema fuzzing does not make: crafted cursors, deep JSON, NUL characters.

Each is refused with a 400 that names the problem, and nothing reaches the database as a 500.
"""

from __future__ import annotations

import base64
import json
import re
import uuid
from urllib.parse import parse_qs

import pytest
from django.test import Client
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from echoroo.api.parsers import MAX_DEPTH

pytestmark = pytest.mark.django_db

HOSTILE_POSITIONS = ["nan", "1e400", "\x00", "1';select 1--", "", "1.5", " 1", "99999999999999999999", "٣"]


def api_document() -> dict:
    from drf_spectacular.generators import SchemaGenerator

    return json.loads(json.dumps(SchemaGenerator().get_schema(request=None, public=True), default=str))


def operations(document: dict, methods: set[str]) -> list[tuple[str, str, dict]]:
    return [
        (method, path, operation)
        for path, entries in document["paths"].items()
        for method, operation in entries.items()
        if method in methods
    ]


def cursor(position: str, **more: str) -> str:
    fields = "&".join(f"{name}={value}" for name, value in {**more, "p": position}.items())
    return base64.b64encode(fields.encode()).decode()


def gives_a_page(encoded: str) -> bool:
    """Whether a cursor must give a page: it reads as DRF reads cursors (an ASCII query string whose offset o is a
    whole number >= 0 and direction r an integer), and its position p, where given, is an id: an integer of at
    most 20 ASCII digits within PostgreSQL's bigint (every list here is ordered by id)."""
    fields = base64.b64decode(encoded).decode("latin-1")
    if not fields.isascii():
        return False
    tokens = parse_qs(fields, keep_blank_values=True)
    try:
        if int(tokens.get("o", ["0"])[0]) < 0:
            return False
        int(tokens.get("r", ["0"])[0])
    except ValueError:
        return False
    position = tokens.get("p", [None])[0]
    if position is None:
        return True
    return re.fullmatch(r"-?[0-9]{1,20}", position) is not None and -(2**63) <= int(position) < 2**63


@pytest.fixture
def world(django_user_model):
    """A superuser's client and one row of each kind an URL can name, with a job's detections."""
    from annotations.services import create_annotation
    from echoroo.models import Dataset, Recording, Site, Tag
    from inference.services import model_run_for
    from tests.pages.detections import job_with_detections
    from validation.models import ThresholdSet

    admin = django_user_model.objects.create_superuser("hostile", password="hostile-password-1")
    dataset = Dataset.objects.create(name="Hostile", created_by=admin)
    site = Site.objects.create(dataset=dataset, name="Ridge")
    recording = Recording.objects.create(
        dataset=dataset, path="hostile/a.wav", sha256="b" * 64, duration=60, samplerate=48_000, channels=1
    )
    run = model_run_for("birdnet")
    robin = "Turdus migratorius_American Robin"
    job = job_with_detections(run, {recording: {3.0 * i: {robin: 0.5 + i / 100} for i in range(8)}})
    annotation = create_annotation(recording, by=admin, start_time=1.0, end_time=2.0, species=[robin])
    client = Client()
    client.force_login(admin)
    uuids = {
        "datasets": dataset.uuid,
        "sites": site.uuid,
        "model-runs": run.uuid,
        "tags": Tag.objects.get(value=robin).uuid,
        "clips": recording.clips.first().uuid,
        "jobs": job.uuid,
        "sound-event-annotations": annotation.uuid,
        "threshold-sets": ThresholdSet.objects.create(name="Strict", default_threshold=0.8).uuid,
    }
    return client, uuids


def concrete(path: str, uuids: dict) -> str:
    """The path with each {parameter} replaced by the uuid of a real row of the collection before it."""

    def fill(match: re.Match) -> str:
        collection = path[: match.start()].rstrip("/").rsplit("/", 1)[-1]
        return str(uuids.get(collection, uuid.uuid4()))

    return re.sub(r"\{\w+\}", fill, path)


def cursor_lists(uuids: dict) -> list[str]:
    document = api_document()
    return [
        concrete(path, uuids)
        for method, path, operation in operations(document, {"get"})
        if any(parameter["name"] == "cursor" for parameter in operation.get("parameters", []))
    ]


def test_every_cursor_paginated_list_refuses_a_crafted_position_naming_the_cursor(world):
    client, uuids = world
    lists = cursor_lists(uuids)
    named = ["recordings", "clips", "clip-predictions", "annotations", "sound-event-annotations", "verdicts"]
    assert {f"/api/v1/{name}/" for name in named} <= set(lists)
    assert f"/api/v1/inference/jobs/{uuids['jobs']}/detections/" in lists
    for path in lists:
        for position in HOSTILE_POSITIONS:
            response = client.get(path, {"cursor": cursor(position)})
            assert response.status_code == 400, (path, position, response.content[:300])
            assert "Invalid cursor" in response.json()["cursor"][0], (path, position)


def test_a_cursor_that_does_not_decode_is_a_400_not_a_404(world):
    client, _ = world
    for garbage in ["not base64!", cursor("5", o="-1"), cursor("5", r="x"), "%FF"]:
        response = client.get("/api/v1/clips/", {"cursor": garbage})
        assert response.status_code == 400, garbage
        assert response.json()["cursor"][0].startswith("Invalid cursor: it is not one this API gave out")


def test_the_cursors_the_api_gives_out_still_walk_every_page_both_ways(world):
    client, uuids = world
    from echoroo.models import Clip

    expected = list(Clip.objects.order_by("id").values_list("uuid", flat=True))
    seen, url, pages = [], "/api/v1/clips/?page_size=3", []
    while url:
        page = client.get(url).json()
        seen += [row["uuid"] for row in page["results"]]
        pages.append(page)
        url = page["next"]
    assert seen == [str(value) for value in expected] and len(pages) == 3
    back = client.get(pages[-1]["previous"]).json()
    assert back["results"] == pages[-2]["results"]
    detections = client.get(f"/api/v1/inference/jobs/{uuids['jobs']}/detections/?page_size=5").json()
    assert len(client.get(detections["next"]).json()["results"]) == 3


@settings(max_examples=60, deadline=None, suppress_health_check=list(HealthCheck), derandomize=True)
@given(
    position=st.text(max_size=30) | st.integers(min_value=-(2**70), max_value=2**70).map(str),
    offset=st.sampled_from(["", "0", "3", "-1", "1001", "x"]),
    reverse=st.sampled_from(["", "0", "1", "2", "x"]),
)
def test_any_cursor_is_a_page_or_a_400_naming_the_cursor(world, position, offset, reverse):
    client, uuids = world
    more = {name: value for name, value in (("o", offset), ("r", reverse)) if value}
    expected = 200 if gives_a_page(cursor(position, **more)) else 400
    for path in ("/api/v1/recordings/", "/api/v1/annotations/", f"/api/v1/inference/jobs/{uuids['jobs']}/detections/"):
        response = client.get(path, {"cursor": cursor(position, **more)})
        assert response.status_code == expected, (path, position, more, response.content[:300])
        if expected == 400:
            assert response.json()["cursor"][0].startswith("Invalid cursor: "), (path, position, more)
        else:
            assert isinstance(response.json()["results"], list)


def deeply_nested(levels: int) -> str:
    return '{"name": ' + "[" * levels + "]" * levels + "}"


def test_every_json_endpoint_refuses_a_body_nested_ten_thousand_deep(world):
    client, uuids = world
    parsed = 0
    for method, path, operation in operations(api_document(), {"post", "put", "patch"}):
        url = concrete(path, uuids)
        response = client.generic(method.upper(), url, deeply_nested(10_000), "application/json")
        assert response.status_code < 500, (method, url, response.content[:300])
        if "application/json" in (operation.get("requestBody") or {}).get("content", {}):
            assert response.status_code == 400, (method, url, response.status_code, response.content[:300])
            assert f"nested deeper than {MAX_DEPTH} levels" in response.json()["detail"], (method, url)
            parsed += 1
    assert parsed >= 25


def test_json_nested_to_the_limit_is_read_and_one_level_more_is_refused(world):
    client, _ = world
    # The body is one object, so MAX_DEPTH - 1 lists inside it reach the limit.
    within = client.post("/api/v1/datasets/", deeply_nested(MAX_DEPTH - 1), content_type="application/json")
    assert within.status_code == 400 and "name" in within.json()  # read, then refused by the serializer
    beyond = client.post("/api/v1/datasets/", deeply_nested(MAX_DEPTH), content_type="application/json")
    assert beyond.status_code == 400 and "nested deeper" in beyond.json()["detail"]


def test_a_nul_character_anywhere_in_a_json_body_is_refused_and_nothing_is_written(world):
    from inference.models import InferenceJob
    from validation.models import ThresholdSet

    client, uuids = world
    before = InferenceJob.objects.count(), ThresholdSet.objects.count()
    body = {"model_name": "birdnet", "dataset": str(uuids["datasets"]), "config": {"species_list": ["Robin\x00"]}}
    response = client.post("/api/v1/inference/jobs/", body, content_type="application/json")
    assert response.status_code == 400
    assert "NUL character" in response.json()["detail"]
    # A species named as a key: before the parser refused it, the lookup of its tag was a 500.
    body = {"name": "Loose", "default_threshold": 0.5, "thresholds": {"Turdus migratorius\x00": 0.5}}
    response = client.post("/api/v1/threshold-sets/", body, content_type="application/json")
    assert response.status_code == 400 and "NUL character" in response.json()["detail"]
    assert (InferenceJob.objects.count(), ThresholdSet.objects.count()) == before


@pytest.mark.parametrize("query", ["name=%00", "dataset=a%00b", "%00=1", "search=%00&cursor=x"])
def test_a_nul_in_an_api_query_string_is_a_400_naming_the_parameter(world, query):
    client, _ = world
    response = client.get(f"/api/v1/recordings/?{query}")
    assert response.status_code == 400
    # Named as the API names any bad field, {parameter: [message]}; a bad name has no field: {"detail": ...}.
    name = query.partition("=")[0]
    answer = response.json()
    messages = answer["detail"] if name == "%00" else answer[name][0]
    assert "NUL character (%00)" in messages
