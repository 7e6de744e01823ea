"""Snippets embedded by the search worker (a real cluster on its own queue), not by the web process."""

from __future__ import annotations

import contextlib
import time

import psutil
import pytest
import soundfile as sf
from django_q.models import Task

from echoroo.models import Clip
from inference import services
from search.tasks import embed_snippet
from tests.clusters import start_cluster, stop_cluster
from tests.conftest import SHARED_DATA
from tests.echoroo.test_serve import serve  # noqa: F401 (the fixture: serve on its own embedded server)
from tests.search.test_audio_query import URL, cut, spans, wav


@pytest.fixture
def embedded_minute(field_recording):
    """1min.wav analysed by a real BirdNET job: 20 clips with their embeddings."""
    services.start_job(services.create_job(model_name="birdnet", recording=field_recording), sync=True)
    assert Clip.objects.filter(embeddings__isnull=False).count() == 20
    return field_recording


def search(api_client, samples, rate):
    fields = {"file": wav(samples, rate), "model_name": "birdnet", "min_similarity": -1, "limit": 5}
    return api_client.post(URL, fields)


@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
def test_the_search_worker_embeds_the_snippet_and_the_web_process_never_loads_the_model(
    api_client, embedded_minute, settings, monkeypatch
):
    samples, rate = cut(9, 12)
    in_web = search(api_client, samples, rate).json()["results"]

    def no_model_here(model_name):
        raise AssertionError("the web process loaded the model")

    monkeypatch.setattr("search.uploads.load_model", no_model_here)
    settings.EMBED_SNIPPETS_IN = "worker"
    settings.SNIPPET_TIMEOUT_S = 120.0  # a cold start: the worker's interpreter, then its model
    worker = start_cluster(settings.SEARCH_CLUSTER)
    try:
        response = search(api_client, samples, rate)
        started = time.monotonic()
        again = search(api_client, *cut(30, 33))
        warm_s = time.monotonic() - started
    finally:
        stop_cluster(worker)
    assert spans(response)[0] == (9.0, 12.0)
    in_worker = response.json()["results"]
    assert [row["clip"]["uuid"] for row in in_worker] == [row["clip"]["uuid"] for row in in_web]
    for by_worker, by_web in zip(in_worker, in_web, strict=True):
        assert by_worker["similarity"] == pytest.approx(by_web["similarity"], abs=1e-5)
    assert spans(again)[0] == (30.0, 33.0)
    assert warm_s < 10, f"a second snippet took {warm_s:.1f} s: the worker should keep its model loaded"
    # The task rows held the snippets' bytes: each is deleted once its vector is read.
    assert not Task.objects.filter(name__startswith="snippet-").exists()


@pytest.mark.django_db(transaction=True)
def test_without_a_search_worker_the_api_answers_503_and_the_page_says_why(
    api_client, client, admin_user, embedded_minute, settings, monkeypatch
):
    monkeypatch.setattr("search.uploads.load_model", lambda name: pytest.fail("the web process loaded the model"))
    settings.EMBED_SNIPPETS_IN = "worker"
    settings.SNIPPET_TIMEOUT_S = 1.5
    started = time.monotonic()
    response = search(api_client, *cut(9, 12))
    assert time.monotonic() - started < 10
    assert response.status_code == 503 and response["Retry-After"] == "30"
    assert "the search worker did not embed the snippet within 1.5 s" in response.json()["detail"]
    client.force_login(admin_user)
    run = services.model_run_for("birdnet")
    page = client.post("/search/", {"file": wav(*cut(9, 12)), "model": run.uuid, "min_similarity": -1, "limit": 5})
    assert page.status_code == 200
    assert "the search worker did not embed the snippet within 1.5 s" in page.content.decode()


def test_the_worker_task_answers_a_bad_snippet_with_the_field_at_fault(tmp_path):
    answer = embed_snippet(b"RIFF\x00\x00\x00\x00WAVEjunk", ".wav", "birdnet", time.time() + 60)
    assert set(answer) == {"errors"} and "file" in answer["errors"]
    late = embed_snippet((SHARED_DATA / "rugr_drum.wav").read_bytes(), ".wav", "birdnet", time.time() - 1)
    assert late == {"errors": {"file": "the search stopped waiting for this snippet"}}


def test_the_worker_task_embeds_a_snippet_as_the_web_process_does(tmp_path):
    import numpy as np

    from search.uploads import embed_file, load_model

    path = tmp_path / "drum.flac"
    samples, rate = sf.read(SHARED_DATA / "rugr_drum.wav", dtype="int16")
    sf.write(path, samples[: 4 * rate], rate)
    answer = embed_snippet(path.read_bytes(), ".flac", "birdnet", time.time() + 60)
    expected = embed_file(path, load_model("birdnet"))
    assert len(answer["embedding"]) == 1024
    assert np.allclose(answer["embedding"], expected, atol=1e-6)


@pytest.mark.slow
def test_serve_runs_the_search_worker_and_tells_its_web_processes_to_use_it(serve):  # noqa: F811
    from tests.echoroo.test_serve import get
    from tests.echoroo.test_serve import wait_for as wait_for_server

    server = serve()
    wait_for_server(lambda: get(server.url("/healthz"))[0] == 200, 300, "the server to answer", server.output)
    web = [child for child in server.descendants() if "gunicorn" in " ".join(child.cmdline())]
    assert web and all(child.environ().get("EMBED_SNIPPETS_IN") == "worker" for child in web)

    def search_worker() -> list:
        found = []
        for child in server.descendants():
            with contextlib.suppress(psutil.Error):  # processes come and go (prepare_models)
                if child.environ().get("Q_CLUSTER_NAME") == "echoroo-search":
                    found.append(child)
        return found

    # The clusters start once the model files are prepared, after the web server.
    wait_for_server(search_worker, 120, "serve's search worker cluster", server.output)
    # What a web process does with a snippet, against serve's own database: its search worker answers.
    code = (
        "from search.uploads import embed_in_worker; from tests.conftest import SHARED_DATA; "
        "print(len(embed_in_worker((SHARED_DATA / 'rugr_drum.wav').read_bytes(), '.wav', 'birdnet')))"
    )
    assert server.manage("shell", "-c", code).split()[-1] == "1024"
