"""The API fuzzed from its own OpenAPI schema: no 500 anywhere; every error a 4xx that names the problem.

Schemathesis generates requests for every operation of /api/schema/ (bounded examples each); they
are sent through Django's test client as a logged-in user, against the real database with some data.
"""

from __future__ import annotations

import io
import json
from urllib.parse import urlencode

import numpy as np
import pytest
import schemathesis
from django.test import Client
from django.test.client import BOUNDARY, MULTIPART_CONTENT, encode_multipart
from hypothesis import HealthCheck, settings
from rest_framework.authtoken.models import Token
from schemathesis.core import NotSet

EXAMPLES_PER_OPERATION = 8


def load_schema() -> schemathesis.BaseSchema:
    from drf_spectacular.generators import SchemaGenerator

    document = json.loads(json.dumps(SchemaGenerator().get_schema(request=None, public=True), default=str))
    return schemathesis.openapi.from_dict(document)


schema = load_schema()


@pytest.fixture
def data(db, django_user_model):
    """A little of everything, so generated requests reach real rows: a dataset, a clip, an embedding."""
    from echoroo.models import Clip, ClipPrediction, ClipPredictionTag, Dataset, Recording, Tag
    from embeddings.storage import store_embeddings
    from inference.services import model_run_for

    user = django_user_model.objects.create_user("fuzzer", password="fuzz-password-1")
    dataset = Dataset.objects.create(name="Fuzzed", created_by=user)
    recording = Recording.objects.create(
        dataset=dataset, path="fuzz/a.wav", sha256="a" * 64, duration=30, samplerate=48_000, channels=1
    )
    clips = Clip.objects.bulk_create(Clip(recording=recording, start_time=3 * i, end_time=3 * i + 3) for i in range(10))
    run = model_run_for("birdnet")
    store_embeddings("clip", np.array([c.id for c in clips]), run.id, np.random.default_rng(0).normal(size=(10, 1024)))
    tag = Tag.objects.create(key="species", value="Turdus migratorius_American Robin")
    prediction = ClipPrediction.objects.create(clip=clips[0], model_run=run)
    ClipPredictionTag.objects.create(clip_prediction=prediction, tag=tag, score=0.9)
    return Token.objects.create(user=user).key


def send(client: Client, case, token: str):
    headers = {"HTTP_AUTHORIZATION": f"Token {token}"}
    for name, value in (case.headers or {}).items():
        if name.lower() not in {"authorization", "content-type", "content-length"}:
            headers["HTTP_" + name.upper().replace("-", "_")] = str(value)
    body = None if isinstance(case.body, NotSet) else case.body
    query = urlencode(case.query or {}, doseq=True)
    path = case.formatted_path + (f"?{query}" if query else "")
    media_type = case.media_type or "application/json"
    if body is None:
        return client.generic(case.method, path, **headers)
    if media_type.startswith(("multipart/", "application/x-www-form-urlencoded")):
        # A form cannot carry null: a browser or client leaves such a field out.
        fields = body if isinstance(body, dict) else {}
        data = {key: io.BytesIO(value) if isinstance(value, bytes) else value for key, value in fields.items()}
        data = {key: value for key, value in data.items() if value is not None}
        return client.generic(case.method, path, encode_multipart(BOUNDARY, data), MULTIPART_CONTENT, **headers)
    payload = body if isinstance(body, bytes | str) else json.dumps(body)
    return client.generic(case.method, path, payload, "application/json", **headers)


def names_the_problem(response) -> bool:
    """A 4xx body that says what is wrong: a JSON object with a field name or a detail, not empty."""
    try:
        body = json.loads(response.content)
    except ValueError:
        return False
    if isinstance(body, dict):
        return bool(body) and all(body.values())
    return isinstance(body, list) and bool(body)


@schema.parametrize()
@settings(
    max_examples=EXAMPLES_PER_OPERATION,
    deadline=None,
    suppress_health_check=list(HealthCheck),
    derandomize=True,
)
@pytest.mark.django_db
def test_the_api_answers_every_generated_request_without_a_server_error(case, data):
    response = send(Client(), case, data)
    where = f"{case.method} {case.formatted_path} query={case.query} body={str(case.body)[:300]}"
    assert response.status_code < 500, f"{response.status_code} for {where}: {response.content[:500]!r}"
    if 400 <= response.status_code < 500 and response.status_code != 405:
        assert names_the_problem(response), f"{response.status_code} without a reason for {where}"
