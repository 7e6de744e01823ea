"""The search API: by vector or clip, a clip's embeddings, similar clips, and every way a request can be wrong."""

import uuid

import numpy as np
import pytest
from rest_framework.test import APIClient

from echoroo.models import Clip, ModelRun
from embeddings.storage import store_embeddings
from tests.search.conftest import DIMENSION, make_space

pytestmark = pytest.mark.django_db

SEARCH = "/api/v1/embeddings/search/"


@pytest.fixture
def space(db):
    """500 clips: the API's tests need the space's shape, not its size."""
    return make_space(clips_per_recording=25)


def clip_url(clip, action: str = "") -> str:
    return f"/api/v1/embeddings/clips/{clip.uuid}/{action}"


def a_query(space) -> list[float]:
    return [float(x) for x in space.vectors[42]]


def search(api_client, **body):
    return api_client.post(SEARCH, {"model_name": "synthetic", "min_similarity": -1, **body}, format="json")


def errors_of(response, status: int = 400) -> dict:
    assert response.status_code == status, response.content
    return response.json()


@pytest.mark.parametrize(
    ("method", "url"),
    [
        ("post", SEARCH),
        ("get", f"/api/v1/embeddings/clips/{uuid.uuid4()}/"),
        ("post", f"/api/v1/embeddings/clips/{uuid.uuid4()}/similar/"),
        ("post", "/api/v1/search/audio/"),
    ],
)
def test_every_endpoint_needs_a_login(db, method, url):
    response = getattr(APIClient(), method)(url, {}, format="json")
    assert response.status_code == 403


def test_a_search_by_vector_answers_clips_their_recordings_similarity_and_model_run(api_client, space):
    response = search(api_client, embedding=a_query(space), limit=5)
    assert response.status_code == 200, response.content
    results = response.json()["results"]
    assert len(results) == 5
    first = results[0]
    clip = Clip.objects.select_related("recording__dataset", "recording__site").get(uuid=first["clip"]["uuid"])
    assert clip.pk == space.clip_ids[42]  # the stored vector itself
    assert first["similarity"] == pytest.approx(1.0, abs=1e-3)
    assert first["clip"] == {"uuid": str(clip.uuid), "start_time": clip.start_time, "end_time": clip.end_time}
    recording = clip.recording
    assert first["recording"] == {
        "uuid": str(recording.uuid),
        "path": recording.path,
        "dataset": str(recording.dataset.uuid),
        "site": str(recording.site.uuid),
        "recorded_at": recording.recorded_at.isoformat().replace("+00:00", "Z"),
    }
    run = space.model_run
    assert first["model_run"] == {"uuid": str(run.uuid), "name": run.name, "version": run.version}
    similarities = [result["similarity"] for result in results]
    assert similarities == sorted(similarities, reverse=True)


def test_the_seed_defaults_are_20_results_at_similarity_0_7(api_client, space):
    response = api_client.post(SEARCH, {"model_name": "synthetic", "embedding": a_query(space)}, format="json")
    results = response.json()["results"]
    assert 0 < len(results) <= 20 and min(result["similarity"] for result in results) >= 0.7


def test_a_search_by_clip_leaves_out_its_recording(api_client, space):
    clip = space.clip(42)
    results = search(api_client, clip_uuid=str(clip.uuid)).json()["results"]
    assert len(results) == 20
    assert str(clip.recording.uuid) not in {result["recording"]["uuid"] for result in results}
    with_own = search(api_client, clip_uuid=str(clip.uuid), exclude_own_recording=False).json()["results"]
    assert str(clip.uuid) not in {result["clip"]["uuid"] for result in with_own}


def test_filters_are_named_by_uuid(api_client, space):
    recording = space.recordings[0]
    body = {
        "embedding": a_query(space),
        "dataset": str(space.small.uuid),
        "site": str(recording.site.uuid),
        "recorded_after": "2024-05-01T00:00:00Z",
        "recorded_before": "2024-05-01T23:59:59Z",
    }
    results = search(api_client, **body).json()["results"]
    assert len(results) == 20
    assert {result["recording"]["uuid"] for result in results} == {str(recording.uuid)}
    only = search(api_client, embedding=a_query(space), recording=str(space.recordings[3].uuid)).json()["results"]
    assert {result["recording"]["uuid"] for result in only} == {str(space.recordings[3].uuid)}


def test_a_clips_embeddings_are_listed_per_model_run(api_client, space):
    clip = space.clip(42)
    body = api_client.get(clip_url(clip)).json()
    assert body["clip"]["uuid"] == str(clip.uuid) and body["recording"] == str(clip.recording.uuid)
    [embedding] = body["embeddings"]
    assert embedding["model_run"]["uuid"] == str(space.model_run.uuid)
    assert embedding["dimension"] == DIMENSION
    np.testing.assert_array_equal(np.array(embedding["embedding"], dtype=np.float16), space.vectors[42])
    # The vector as listed searches to its own clip.
    results = search(api_client, embedding=embedding["embedding"], limit=1).json()["results"]
    assert results[0]["clip"]["uuid"] == str(clip.uuid)


def test_a_clip_without_embeddings_lists_none(api_client, space):
    clip = Clip.objects.create(recording=space.recordings[0], start_time=900, end_time=903)
    assert api_client.get(clip_url(clip)).json()["embeddings"] == []


def test_similar_clips_of_a_clip(api_client, space):
    clip = space.clip(42)
    response = api_client.post(clip_url(clip, "similar/"), {"limit": 7, "min_similarity": -1}, format="json")
    results = response.json()["results"]
    assert len(results) == 7
    assert str(clip.recording.uuid) not in {result["recording"]["uuid"] for result in results}
    named = api_client.post(clip_url(clip, "similar/"), {"model_name": "synthetic", "min_similarity": -1})
    assert len(named.json()["results"]) == 20


def test_an_unknown_clip_is_a_404(api_client, space):
    missing = type("Missing", (), {"uuid": uuid.uuid4()})()
    assert api_client.get(clip_url(missing)).status_code == 404
    assert api_client.post(clip_url(missing, "similar/"), {}, format="json").status_code == 404
    assert api_client.get("/api/v1/embeddings/clips/not-a-uuid/").status_code == 404


def test_similar_to_a_clip_without_an_embedding_is_a_404_that_says_so(api_client, space):
    clip = Clip.objects.create(recording=space.recordings[0], start_time=900, end_time=903)
    body = errors_of(api_client.post(clip_url(clip, "similar/"), {}, format="json"), 404)
    assert f"clip {clip.uuid} has no embedding" in body["detail"]
    body = errors_of(api_client.post(clip_url(clip, "similar/"), {"model_name": "synthetic"}, format="json"), 404)
    assert "has no embedding of synthetic" in body["detail"]


def test_similar_to_a_clip_of_two_model_runs_needs_the_model_named(api_client, space):
    clip = space.clip(42)
    other = ModelRun.objects.create(name="other", version="1", embedding_dimension=8)
    store_embeddings("clip", np.array([clip.pk]), other.pk, np.ones((1, 8)))
    body = errors_of(api_client.post(clip_url(clip, "similar/"), {}, format="json"))
    assert "several model runs" in body["model_name"][0]


def test_a_vector_of_the_wrong_dimension_is_refused_with_the_expected_one(api_client, space):
    body = errors_of(search(api_client, embedding=[0.5] * 10))
    assert body["embedding"] == [f"has 10 values; this model run's embeddings have {DIMENSION} dimensions"]


def test_an_unknown_model_is_refused_naming_the_models_there_are(api_client, space):
    body = errors_of(search(api_client, embedding=a_query(space), model_name="birdclef"))
    assert "no model run is named 'birdclef'" in body["model_name"][0] and "synthetic 1" in body["model_name"][0]


def test_a_model_without_embeddings_is_refused(api_client, space):
    ModelRun.objects.create(name="perch", version="2.0", embedding_dimension=1536)
    body = errors_of(search(api_client, embedding=[0.1] * 1536, model_name="perch"))
    assert "perch has no embeddings yet" in body["model_name"][0]


def test_an_unknown_query_clip_is_refused(api_client, space):
    missing = uuid.uuid4()
    body = errors_of(search(api_client, clip_uuid=str(missing)))
    assert body["clip_uuid"] == [f"no clip has the uuid {missing}"]


def test_a_query_clip_without_an_embedding_of_the_model_is_refused(api_client, space):
    clip = Clip.objects.create(recording=space.recordings[0], start_time=900, end_time=903)
    body = errors_of(search(api_client, clip_uuid=str(clip.uuid)))
    assert "has no embedding of synthetic" in body["clip_uuid"][0]


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({}, "embedding"),
        ({"embedding": [1.0] * DIMENSION, "clip_uuid": str(uuid.uuid4())}, "embedding"),
        ({"embedding": []}, "embedding"),
        ({"embedding": ["a"] * DIMENSION}, "embedding"),
        ({"embedding": [0.0] * DIMENSION}, "embedding"),
        ({"embedding": [1e6] * DIMENSION}, "embedding"),
        ({"embedding": [1.0] * DIMENSION, "limit": 0}, "limit"),
        ({"embedding": [1.0] * DIMENSION, "limit": 1001}, "limit"),
        ({"embedding": [1.0] * DIMENSION, "min_similarity": 1.5}, "min_similarity"),
        ({"embedding": [1.0] * DIMENSION, "min_similarity": -1.5}, "min_similarity"),
        ({"embedding": [1.0] * DIMENSION, "dataset": str(uuid.uuid4())}, "dataset"),
        ({"embedding": [1.0] * DIMENSION, "site": "not-a-uuid"}, "site"),
        ({"embedding": [1.0] * DIMENSION, "recorded_after": "yesterday"}, "recorded_after"),
        (
            {"embedding": [1.0] * DIMENSION, "recorded_after": "2024-06-01T00:00Z", "recorded_before": "2024-05-01"},
            "recorded_before",
        ),
        ({"embedding": [1.0] * DIMENSION, "model_name": ""}, "model_name"),
        ({"embedding": [1.0] * DIMENSION, "ef_search": 5000}, "ef_search"),
    ],
)
def test_a_bad_request_is_a_400_naming_the_field(api_client, space, body, field):
    assert field in errors_of(search(api_client, **body))


def test_non_finite_numbers_are_refused(api_client, space):
    vector = ", ".join(["1.0"] * (DIMENSION - 1))
    for text in ("NaN", "Infinity", "1e400"):
        payload = f'{{"model_name": "synthetic", "embedding": [{vector}, {text}]}}'
        response = api_client.post(SEARCH, payload, content_type="application/json")
        assert response.status_code == 400, (text, response.content)
    body = f'{{"model_name": "synthetic", "embedding": [{vector}, 1.0], "min_similarity": 1e400}}'
    assert "min_similarity" in errors_of(api_client.post(SEARCH, body, content_type="application/json"))


def test_the_browsable_api_shows_each_endpoint_and_its_results(api_client, space):
    clip = space.clip(42)
    # A search is a POST: the browsable page of a GET is its form, with a 405; the clip itself is a page.
    expected = {SEARCH: 405, clip_url(clip): 200, clip_url(clip, "similar/"): 405, "/api/v1/search/audio/": 405}
    for url, status in expected.items():
        response = api_client.get(url, HTTP_ACCEPT="text/html")
        assert response.status_code == status and b"<form" in response.content, url
    body = {"model_name": "synthetic", "clip_uuid": str(clip.uuid)}
    response = api_client.post(SEARCH, body, HTTP_ACCEPT="text/html")
    assert response.status_code == 200 and b"similarity" in response.content


def test_a_search_by_clip_needs_no_model_name_as_similar_does_not(api_client, space):
    clip = space.clip(42)
    similar = api_client.post(clip_url(clip, "similar/"), {"min_similarity": -1, "limit": 5}, format="json")
    assert similar.status_code == 200, similar.content
    expected = [row["clip"]["uuid"] for row in similar.json()["results"]]
    body = {"clip_uuid": str(clip.uuid), "min_similarity": -1, "limit": 5}
    for extra in ({}, {"model_name": ""}, {"model_name": None, "model_version": ""}):
        response = api_client.post(SEARCH, {**body, **extra}, format="json")
        assert response.status_code == 200, (extra, response.content)
        assert [row["clip"]["uuid"] for row in response.json()["results"]] == expected
    # As the browsable API's form sends it: every field, the empty ones blank.
    form = {**body, "model_name": "", "model_version": "", "embedding": "", "sound_event_uuid": ""}
    response = api_client.post(SEARCH, {k: v for k, v in form.items() if k != "embedding"})
    assert response.status_code == 200, response.content
