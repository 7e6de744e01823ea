"""A season's work as a user does it, end to end, with real parts only.

Recordings imported with import_recordings; a BirdNET job created and started through the API
and run by a real worker cluster (another process); its detections exported through the export
API; similar clips found by a clip through the search API; clips labelled through the classifiers
API, a classifier trained on their embeddings and applied to every window by the same worker.
Each step is checked by what it really produced.
"""

from __future__ import annotations

import csv
import io
import shutil
from collections import Counter

import pytest
from django.core.management import call_command
from rest_framework.authtoken.models import Token
from rest_framework.test import APIClient

from tests.clusters import start_cluster, stop_cluster, wait_for
from tests.conftest import SHARED_DATA

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.slow]

RECORDINGS = {"1min.wav": 60.0, "rugr_drum.wav": 10.0, "great_plains_toad.wav": 44.57, "soundscape.flac": 120.0}
# Windows of 3 s every second: the drumming's 10 s give 8 windows, enough examples to train on; the toad's last
# 2.57 s make one more, padded.
CONFIG = {"confidence_threshold": 0.25, "overlap": 2.0}
WINDOWS = {"1min.wav": 58, "rugr_drum.wav": 8, "great_plains_toad.wav": 43, "soundscape.flac": 118}
DRUM = "Ruffed grouse drumming"


@pytest.fixture
def curator(django_user_model) -> APIClient:
    """A staff member's API client, authenticated with a token as the README says."""
    user = django_user_model.objects.create_user("curator", password="curator-password-1", is_staff=True)
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {Token.objects.create(user=user).key}")
    return client


@pytest.fixture
def worker():
    cluster = start_cluster()
    yield cluster
    stop_cluster(cluster)


def every_row(client: APIClient, url: str, **query) -> list[dict]:
    """Every row of a paginated list, by following its next links."""
    rows, page = [], client.get(url, {**query, "page_size": 1000}).json()
    rows += page["results"]
    while page.get("next"):
        page = client.get(page["next"]).json()
        rows += page["results"]
    return rows


def finished(client: APIClient, url: str) -> dict | None:
    job = client.get(url).json()
    return job if job["status"] in ("completed", "failed", "cancelled") else None


def test_import_analyse_export_search_label_train_and_apply(audio_root, curator, worker):
    # Import: the recordings copied under AUDIO_ROOT, imported by the management command.
    folder = audio_root / "marsh"
    folder.mkdir()
    for name in RECORDINGS:
        shutil.copy(SHARED_DATA / name, folder / name)
    out = io.StringIO()
    site = ["--site", "North transect", "--lat", "42.47", "--lon", "-76.45"]
    call_command("import_recordings", str(folder), "--dataset", "Marsh 2026", *site, stdout=out)
    dataset = curator.get("/api/v1/datasets/", {"name": "Marsh 2026"}).json()["results"][0]
    recordings = every_row(curator, "/api/v1/recordings/", dataset=dataset["uuid"])
    names = {row["uuid"]: row["path"].rsplit("/", 1)[-1] for row in recordings}
    durations = {names[row["uuid"]]: row["duration"] for row in recordings}
    assert durations == pytest.approx(RECORDINGS, abs=0.01), out.getvalue()

    # A job through the API, created and started in one request; the worker in the other process runs it.
    response = curator.post(
        "/api/v1/inference/jobs/",
        {"model_name": "birdnet", "dataset_uuid": dataset["uuid"], "config": CONFIG, "start": True},
        format="json",
    )
    assert response.status_code == 201, response.content
    job_url = f"/api/v1/inference/jobs/{response.json()['uuid']}/"
    job = wait_for(lambda: finished(curator, job_url), 600, "the worker to finish the job")
    assert job["status"] == "completed", job
    assert job["processed_clips"] == job["total_clips"] == sum(WINDOWS.values())
    detections = every_row(curator, job_url + "detections/")
    found = Counter(tag["value"] for row in detections for tag in row["tags"])
    # The BirdNET team's example soundscape: its House Finch, Dark-eyed Junco and Black-capped Chickadee.
    assert {"Haemorhous mexicanus_House Finch", "Junco hyemalis_Dark-eyed Junco"} <= set(found), found
    assert all(tag["score"] >= 0.25 for row in detections for tag in row["tags"])

    # Export: the job's detections as one Raven table, a row per window and species it detected.
    export = {"job": job_url.split("/")[-2], "format": "raven", "combined": "true"}
    response = curator.get("/api/v1/exports/detections/", export)
    assert response.status_code == 200
    table = list(csv.DictReader(io.StringIO(b"".join(response.streaming_content).decode()), delimiter="\t"))
    assert len(table) == sum(found.values())
    assert Counter(row["Common Name"] for row in table) == Counter(name.split("_")[1] for name in found.elements())

    # Search by a clip: the windows nearest a window of grouse drumming are more drumming.
    clips = {name: every_row(curator, "/api/v1/clips/", recording=uuid) for uuid, name in names.items()}
    assert {name: len(rows) for name, rows in clips.items()} == WINDOWS
    drums = [clip["uuid"] for clip in clips["rugr_drum.wav"]]
    similar = f"/api/v1/embeddings/clips/{drums[3]}/similar/"
    response = curator.post(similar, {"limit": 6, "min_similarity": -1, "exclude_own_recording": False}, format="json")
    assert response.status_code == 200, response.content
    nearest = response.json()["results"]
    similarities = [result["similarity"] for result in nearest]
    assert len(nearest) == 6 and similarities == sorted(similarities, reverse=True)
    assert sum(result["clip"]["uuid"] in drums for result in nearest) >= 5, nearest
    # By default the query's own recording is left out: nothing elsewhere is as close as the drumming.
    elsewhere = curator.post(similar, {"limit": 6, "min_similarity": -1}, format="json").json()["results"]
    assert len(elsewhere) == 6 and not {result["clip"]["uuid"] for result in elsewhere} & set(drums)
    assert max(result["similarity"] for result in elsewhere) < min(similarities)

    # Label: the drumming positive, every other window of the three other recordings negative.
    others = [clip["uuid"] for name, rows in clips.items() if name != "rugr_drum.wav" for clip in rows]
    for polarity, uuids in (("positive", drums), ("negative", others[::2])):
        response = curator.post(
            "/api/v1/classifiers/labels/", {"label": DRUM, "polarity": polarity, "clips": uuids}, format="json"
        )
        assert response.status_code == 200, response.content
    assert response.json()["positives"] == 8 and response.json()["negatives"] == len(others[::2])

    # Train: a classifier of the label on BirdNET's embeddings.
    response = curator.post("/api/v1/classifiers/", {"label": DRUM}, format="json")
    assert response.status_code == 201, response.content
    classifier = response.json()
    assert classifier["metrics"]["n_positive"] == 8 and classifier["metrics"]["n_negative"] == len(others[::2])
    assert classifier["dimension"] == 1024

    # Apply: the worker scores every stored window; the drumming scores high, the windows nobody labelled low.
    response = curator.post(f"/api/v1/classifiers/{classifier['uuid']}/apply/")
    assert response.status_code == 202, response.content
    apply_url = f"/api/v1/classifiers/jobs/{response.json()['uuid']}/"
    applied = wait_for(lambda: finished(curator, apply_url), 300, "the worker to apply the classifier")
    assert applied["status"] == "completed" and applied["processed_clips"] == len(drums) + len(others)
    run = classifier["model_run"]["uuid"]
    scores = {
        row["clip"]["uuid"]: row["tags"][0]["score"]
        for row in every_row(curator, "/api/v1/clip-predictions/", model_run=run, species=DRUM)
    }
    assert len(scores) == len(drums) + len(others)
    assert min(scores[uuid] for uuid in drums) > 0.5
    unlabelled = others[1::2]
    assert sum(scores[uuid] > 0.5 for uuid in unlabelled) <= len(unlabelled) // 20
