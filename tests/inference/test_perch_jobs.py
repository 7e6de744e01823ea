"""A Perch job through the pipeline, storage and search, on a test SavedModel with Perch 2.0's signature.

The model (1,536-d embeddings, 5-s windows at 32 kHz, seven classes) is built once per session by
tests/inference/conftest.py; it is not Perch. PERCH_MODEL points at its folder, so the job loads it
with the product's own loading code, exactly as it would load a downloaded Perch 2.0.
"""

from __future__ import annotations

import numpy as np
import pytest
import soundfile as sf
from django.db import connection

from echoroo.models import Clip, ClipPredictionTag, SoundEventPrediction
from embeddings.indexes import index_name, index_state
from embeddings.models import ClipEmbedding
from inference import services
from inference.models import InferenceJob
from search.services import search_similar
from tests.conftest import SHARED_DATA

pytestmark = pytest.mark.django_db

THRESHOLD = 0.5
# name in the dataset -> 5-s windows (both files are 32 kHz, Perch's own rate, and whole windows long)
WINDOWS = {"1min.wav": 12, "rugr_drum.wav": 2}


@pytest.fixture
def perch_job(settings, test_model_hub_layout, field_dataset) -> InferenceJob:
    settings.PERCH_MODEL = str(test_model_hub_layout)
    job = services.create_job(model_name="perch", dataset=field_dataset, config={"confidence_threshold": THRESHOLD})
    return services.start_job(job, sync=True)


def model_outputs(runtime, name: str) -> tuple[np.ndarray, np.ndarray]:
    """The test model's scores and embeddings of a recording's 5-s windows, cut here from the file itself."""
    samples, rate = sf.read(SHARED_DATA / name, dtype="float32")
    assert rate == 32_000
    return runtime.predict(samples.reshape(WINDOWS[name], 160_000))


def stored_embeddings(job: InferenceJob, name: str) -> np.ndarray:
    rows = ClipEmbedding.objects.filter(model_run=job.model_run, clip__recording__path__endswith=name)
    return np.array([row.embedding for row in rows.order_by("clip__start_time")], dtype=np.float32)


def test_a_perch_job_stores_5_s_clips_and_1536_d_embeddings_of_the_model(perch_job, perch_test_runtime):
    assert perch_job.status == InferenceJob.Status.COMPLETED
    run = perch_job.model_run
    assert (run.name, run.version, run.embedding_dimension) == ("perch", "2.0", 1536)
    assert (perch_job.processed_clips, perch_job.total_clips) == (14, 14)
    for name, windows in WINDOWS.items():
        spans = list(Clip.objects.filter(recording__path__endswith=name).order_by("start_time"))
        assert [(clip.start_time, clip.end_time) for clip in spans] == [(5.0 * i, 5.0 * i + 5) for i in range(windows)]
        stored = stored_embeddings(perch_job, name)
        assert stored.shape == (windows, 1536)
        # halfvec keeps 11 significant bits: 1e-3 of each value, near enough to tell any two windows apart.
        np.testing.assert_allclose(stored, model_outputs(perch_test_runtime, name)[1], rtol=2e-3, atol=2e-3)


def test_a_perch_job_detects_exactly_the_windows_and_classes_the_model_scores_above_the_threshold(
    perch_job, perch_test_runtime
):
    expected = {}
    for name in WINDOWS:
        scores = model_outputs(perch_test_runtime, name)[0]
        for window, label in zip(*np.nonzero(scores >= THRESHOLD), strict=True):
            expected[(name, 5.0 * window, perch_test_runtime.labels[label].name)] = float(scores[window, label])
    assert len(expected) > 5 and np.abs(np.array(list(expected.values())) - THRESHOLD).min() > 1e-4

    rows = ClipPredictionTag.objects.filter(clip_prediction__job=perch_job).values_list(
        "clip_prediction__clip__recording__path", "clip_prediction__clip__start_time", "tag__value", "score"
    )
    stored = {(path.rsplit("/", 1)[-1], start, species): score for path, start, species, score in rows}
    assert stored.keys() == expected.keys()
    assert [stored[key] for key in expected] == pytest.approx(list(expected.values()), abs=1e-5)
    # No overlap: each window detection is one sound event spanning its 5-s window.
    events = SoundEventPrediction.objects.filter(job=perch_job).select_related("sound_event")
    assert events.count() == len(expected)
    assert {event.sound_event.end_time - event.sound_event.start_time for event in events} == {5.0}


def test_a_search_by_one_of_its_clips_ranks_the_perch_embeddings_by_cosine_similarity(perch_job):
    run = perch_job.model_run
    assert index_state("clip", run.pk) == "valid"
    with connection.cursor() as cursor:
        cursor.execute("SELECT indexdef FROM pg_indexes WHERE indexname = %s", [index_name("clip", run.pk)])
        assert "halfvec(1536)" in cursor.fetchone()[0]

    rows = list(ClipEmbedding.objects.filter(model_run=run).select_related("clip__recording"))
    query = next(row for row in rows if row.clip.recording.path.endswith("1min.wav") and row.clip.start_time == 20.0)
    vectors = np.array([row.embedding for row in rows], dtype=np.float64)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    similarity = vectors @ vectors[rows.index(query)]

    def nearest(keep) -> list[tuple[str, float]]:
        ranked = sorted((-similarity[i], row.clip.uuid) for i, row in enumerate(rows) if keep(row) and row != query)
        return [(str(clip_uuid), -negative) for negative, clip_uuid in ranked]

    # By a clip, its own recording is left out unless asked for.
    found = search_similar(clip=query.clip, limit=5, min_similarity=-1)
    expected = nearest(lambda row: row.clip.recording_id != query.clip.recording_id)
    assert [(str(result.clip.uuid), result.similarity) for result in found] == [
        (clip_uuid, pytest.approx(value, abs=1e-3)) for clip_uuid, value in expected
    ]
    assert {result.model_run for result in found} == {run} and len(found) == 2

    found = search_similar(clip=query.clip, limit=5, min_similarity=-1, exclude_own_recording=False)
    assert [str(result.clip.uuid) for result in found] == [clip_uuid for clip_uuid, _ in nearest(lambda row: True)[:5]]
