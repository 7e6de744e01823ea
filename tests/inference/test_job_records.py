"""A job's results are its own and never change; a later job selects from the stored output, not the model."""

import numpy as np
import pytest
from django.db import transaction

from echoroo.audio import iter_batches
from echoroo.models import ClipOutput, ClipPredictionTag, RecordingOutput, SoundEventPredictionTag, Tag
from inference import runner, services
from inference.models import JobRecording
from inference.selection import storage_floor

pytestmark = pytest.mark.django_db

FIRST = {"confidence_threshold": 0.1, "sensitivity": 1.0}
# Another threshold, a custom species list, another place and week, another sensitivity.
SECOND_LIST = {
    "confidence_threshold": 0.3,
    "sensitivity": 1.3,
    "custom_species_list": ["Hylocichla mustelina", "Spizella pusilla", "Pipilo erythrophthalmus", "Bonasa umbellus"],
}
SECOND_PLACE = {"confidence_threshold": 0.15, "sensitivity": 0.6, "latitude": 40.7, "longitude": -74.0, "week": 22}


class CountingRuntime:
    """The real runtime, counting the batches it is asked to run."""

    def __init__(self, runtime):
        self.runtime = runtime
        self.batches = 0

    def predict_logits(self, batch):
        self.batches += 1
        return self.runtime.predict_logits(batch)

    def __getattr__(self, name):
        return getattr(self.runtime, name)


@pytest.fixture
def counting(monkeypatch):
    """Every job's runtime, wrapped to count model calls."""
    wrappers = []
    load = runner.load_runtime

    def counted(model_name, config, **options):
        wrappers.append(CountingRuntime(load(model_name, config, **options)))
        return wrappers[-1]

    monkeypatch.setattr(runner, "load_runtime", counted)
    return lambda: sum(wrapper.batches for wrapper in wrappers)


def run(dataset, config):
    job = services.create_job(model_name="birdnet", dataset=dataset, config=config)
    return services.start_job(job, sync=True)


def window_rows(job) -> list[tuple]:
    return list(
        ClipPredictionTag.objects.filter(clip_prediction__job=job)
        .order_by("clip_prediction__clip__recording__path", "clip_prediction__clip__start_time", "tag__value")
        .values_list(
            "clip_prediction__uuid",
            "clip_prediction__clip__recording__path",
            "clip_prediction__clip__start_time",
            "clip_prediction__clip__end_time",
            "tag__value",
            "score",
        )
    )


def detection_rows(job) -> list[tuple]:
    return list(
        SoundEventPredictionTag.objects.filter(sound_event_prediction__job=job)
        .order_by("sound_event_prediction__sound_event__start_time", "tag__value")
        .values_list(
            "sound_event_prediction__sound_event__recording__path",
            "sound_event_prediction__sound_event__start_time",
            "sound_event_prediction__sound_event__end_time",
            "tag__value",
            "score",
        )
    )


def without_ids(rows: list[tuple]) -> list[tuple]:
    return [row[1:] for row in rows]


def fresh_run(dataset, config) -> tuple[list, list]:
    """(window rows, detections, model batches) of a job with `config` on an empty database: run, then rolled back."""
    with pytest.raises(RuntimeError), transaction.atomic():
        job = run(dataset, config)
        found = without_ids(window_rows(job)), detection_rows(job)
        raise RuntimeError("roll back")
    return found


@pytest.mark.parametrize("second", [SECOND_LIST, SECOND_PLACE], ids=["species-list", "place-week-sensitivity"])
def test_a_second_job_selects_from_stored_output_what_the_model_would_give(field_dataset, counting, second):
    fresh_windows, fresh_detections = fresh_run(field_dataset, second)
    assert fresh_windows, "the second settings find something on these recordings"
    calls_fresh = counting()
    assert calls_fresh > 0

    first = run(field_dataset, FIRST)
    first_windows, first_detections = window_rows(first), detection_rows(first)
    calls_first = counting() - calls_fresh
    assert calls_first > 0 and first_windows

    second_job = run(field_dataset, second)
    assert counting() == calls_fresh + calls_first, "reused recordings never call the model"
    assert second_job.job_recordings.filter(reused=True).count() == 2
    assert without_ids(window_rows(second_job)) == fresh_windows
    assert detection_rows(second_job) == fresh_detections
    # The first job's record is untouched, row for row (uuids included).
    assert window_rows(first) == first_windows
    assert detection_rows(first) == first_detections


def test_a_threshold_below_the_floor_runs_the_model(field_dataset, counting, settings):
    run(field_dataset, FIRST)
    before = counting()
    low = run(field_dataset, {"confidence_threshold": 0.001})
    assert counting() > before
    assert not low.job_recordings.filter(reused=True).exists()
    assert ClipPredictionTag.objects.filter(clip_prediction__job=low, score__lt=0.01).exists()


def test_another_overlap_runs_the_model(field_dataset, counting):
    run(field_dataset, FIRST)
    before = counting()
    overlapping = run(field_dataset, {**FIRST, "overlap": 1.5})
    assert counting() > before
    assert not overlapping.job_recordings.filter(reused=True).exists()
    assert RecordingOutput.objects.filter(overlap=1.5).count() == 2


def test_a_job_that_wants_embeddings_runs_the_model_where_none_were_stored(field_dataset, counting):
    run(field_dataset, {**FIRST, "store_embeddings": False})
    before = counting()
    with_embeddings = run(field_dataset, FIRST)
    assert counting() > before
    assert not with_embeddings.job_recordings.filter(reused=True).exists()
    assert RecordingOutput.objects.filter(embeddings=True).count() == 2


@pytest.mark.parametrize("sensitivity", [0.5, 0.75, 1.25, 1.5])
def test_scores_derived_from_stored_output_equal_the_models_own(
    field_recording, audio_root, runtime_cache_dir, sensitivity
):
    from inference.runtimes.birdnet import BirdNetRuntime

    run(field_recording.dataset, FIRST)
    model = BirdNetRuntime(sensitivity=sensitivity, cache_dir=runtime_cache_dir)
    windows = np.concatenate([w for _, _, w in iter_batches(audio_root / field_recording.path, 48_000, 3.0)])
    own_scores, _ = model.predict(windows)
    index = {label.name: i for i, label in enumerate(model.labels)}
    stored = ClipOutput.objects.filter(clip__recording=field_recording).select_related("clip")
    tag_names = dict(Tag.objects.values_list("id", "value"))
    compared = 0
    for output in stored:
        window = round(output.clip.start_time / 3.0)
        labels = [index[tag_names[tag]] for tag in output.tags]
        derived = BirdNetRuntime.scores(np.array(output.logits, dtype=np.float32), sensitivity)
        np.testing.assert_allclose(derived, own_scores[window, labels], atol=1e-6, rtol=0)
        compared += len(labels)
    assert compared > 20
    # And nothing that reaches the floor at this sensitivity is missing from the stored output.
    floor_score = BirdNetRuntime.scores(np.float32(storage_floor(0.1)), sensitivity)
    reaching = int((own_scores >= max(floor_score, 0.1)).sum())
    stored_reaching = sum(
        int((BirdNetRuntime.scores(np.array(o.logits, np.float32), sensitivity) >= max(floor_score, 0.1)).sum())
        for o in stored
    )
    assert stored_reaching == reaching


def test_the_stored_output_keeps_every_label_that_can_reach_the_floor(field_recording, audio_root, runtime_cache_dir):
    from inference.runtimes.birdnet import BirdNetRuntime

    run(field_recording.dataset, FIRST)
    model = BirdNetRuntime(cache_dir=runtime_cache_dir)
    windows = np.concatenate([w for _, _, w in iter_batches(audio_root / field_recording.path, 48_000, 3.0)])
    logits, _ = model.predict_logits(windows)
    expected = int((logits >= storage_floor(0.1)).sum())
    stored = sum(len(o.tags) for o in ClipOutput.objects.filter(clip__recording=field_recording))
    assert stored == expected > 0
    assert JobRecording.objects.filter(recording=field_recording, reused=False).count() == 1


def test_stored_output_deleted_by_hand_is_not_trusted(field_dataset, counting):
    first = run(field_dataset, FIRST)
    expected = without_ids(window_rows(first))
    ClipOutput.objects.filter(clip__recording__path__endswith="1min.wav").delete()
    before = counting()
    again = run(field_dataset, FIRST)
    assert counting() > before
    assert set(again.job_recordings.values_list("recording__path", "reused")) == {
        ("Field_season/1min.wav", False),
        ("Field_season/rugr_drum.wav", True),
    }
    assert without_ids(window_rows(again)) == expected


def test_the_first_jobs_api_list_export_and_summary_are_unchanged_by_a_second(field_dataset, api_client, tmp_path):
    from django.core.management import call_command

    from inference.queries import species_summary

    def record(job, when: str) -> tuple:
        listed, url = [], f"/api/v1/inference/jobs/{job.uuid}/detections/?page_size=1000"
        while url:
            page = api_client.get(url).json()
            listed += page["results"]
            url = page["next"]
        for file_format in ("csv", "raven"):
            output = tmp_path / when / f"detections.{file_format}"
            call_command("export_detections", "--job", str(job.uuid), "--format", file_format, "--output", output)
        exported = (tmp_path / when / "detections.csv").read_text()
        tables = sorted((p.name, p.read_text()) for p in (tmp_path / when / "detections.raven").rglob("*.txt"))
        return listed, exported, tables, list(species_summary(job))

    first = run(field_dataset, FIRST)
    before = record(first, "before")
    assert before[0] and before[1].count("\n") > 10 and before[3]
    for second in (SECOND_LIST, SECOND_PLACE):
        run(field_dataset, second)
    assert record(first, "after") == before
