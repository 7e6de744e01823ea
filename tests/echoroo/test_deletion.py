"""Datasets, recordings and model runs deleted in one statement cascading in PostgreSQL."""

from __future__ import annotations

import hashlib
from types import SimpleNamespace

import numpy as np
import pytest
from django.apps import apps
from django.db import connection
from django.test.utils import CaptureQueriesContext

from echoroo import deletion
from echoroo.cascades import DATABASE_RULES, constraints_of, foreign_keys
from echoroo.models import (
    SPECIES,
    Clip,
    ClipAnnotation,
    ClipAnnotationTag,
    ClipPrediction,
    ClipPredictionTag,
    Dataset,
    ModelRun,
    Recording,
    Site,
    SoundEvent,
    SoundEventPrediction,
    SoundEventPredictionTag,
    Tag,
)
from embeddings.indexes import ensure_hnsw_index, index_name
from embeddings.models import ClipEmbedding, SoundEventEmbedding
from inference.models import InferenceJob, JobRecording

pytestmark = pytest.mark.django_db
DIMENSION = 8


def fill(dataset: Dataset, run: ModelRun, recordings: int, clips: int) -> None:
    """Recordings with clips, scored tags, a detection, embeddings, an annotation and a finished job."""
    rng = np.random.default_rng(len(dataset.name))
    site = Site.objects.create(dataset=dataset, name=f"{dataset.name} site")
    tag = Tag.objects.get_or_create(key=SPECIES, value="Turdus merula_Eurasian Blackbird")[0]
    job = InferenceJob.objects.create(model_run=run, dataset=dataset, status=InferenceJob.Status.COMPLETED)
    for r in range(recordings):
        name = f"{dataset.name}/{r}.wav"
        recording = Recording.objects.create(
            dataset=dataset,
            site=site,
            path=name,
            sha256=hashlib.sha256(name.encode()).hexdigest(),
            duration=3.0 * clips,
            samplerate=48000,
            channels=1,
        )
        JobRecording.objects.create(job=job, recording=recording, status=JobRecording.Status.DONE)
        made = Clip.objects.bulk_create(
            Clip(recording=recording, start_time=3 * n, end_time=3 * n + 3) for n in range(clips)
        )
        predictions = ClipPrediction.objects.bulk_create(ClipPrediction(clip=clip, model_run=run) for clip in made)
        ClipPredictionTag.objects.bulk_create(
            ClipPredictionTag(clip_prediction=p, tag=tag, score=0.5) for p in predictions
        )
        ClipEmbedding.objects.bulk_create(
            ClipEmbedding(clip=clip, model_run=run, embedding=rng.random(DIMENSION).tolist()) for clip in made
        )
        event = SoundEvent.objects.create(recording=recording, start_time=0, end_time=6)
        event_prediction = SoundEventPrediction.objects.create(sound_event=event, model_run=run)
        SoundEventPredictionTag.objects.create(sound_event_prediction=event_prediction, tag=tag, score=0.7)
        SoundEventEmbedding.objects.create(sound_event=event, model_run=run, embedding=rng.random(DIMENSION).tolist())
        annotation = ClipAnnotation.objects.create(clip=made[0], notes="checked")
        ClipAnnotationTag.objects.create(clip_annotation=annotation, tag=tag)


@pytest.fixture
def two_datasets() -> SimpleNamespace:
    run = ModelRun.objects.create(name="BirdNET", version="2.4", embedding_dimension=DIMENSION)
    wetlands, forest = Dataset.objects.create(name="Wetlands"), Dataset.objects.create(name="Forest")
    fill(wetlands, run, recordings=3, clips=20)
    fill(forest, run, recordings=2, clips=5)
    return SimpleNamespace(run=run, wetlands=wetlands, forest=forest)


def remaining() -> dict[str, int]:
    models = [
        Site, Recording, Clip, ClipPrediction, ClipPredictionTag, ClipEmbedding, SoundEvent, SoundEventPrediction,
        SoundEventPredictionTag, SoundEventEmbedding, ClipAnnotation, ClipAnnotationTag, InferenceJob, JobRecording,
    ]  # fmt: skip
    return {model.__name__: model.objects.count() for model in models}


def test_every_cascading_foreign_key_cascades_in_postgresql_too():
    """A foreign key added later without the migration's rule fails here, not on a big delete."""
    checked = 0
    with connection.cursor() as cursor:
        for table, column, _, _, on_delete in foreign_keys(apps):
            if on_delete in DATABASE_RULES:
                name, rule = constraints_of(cursor, table)[column]
                assert rule == DATABASE_RULES[on_delete][0], f"{table}.{column} ({name}) does not {on_delete.__name__}"
                checked += 1
    assert checked >= 25


def test_deleting_a_dataset_takes_everything_below_it_and_nothing_else(two_datasets):
    forest_only = {"Site": 1, "Recording": 2, "Clip": 10, "ClipPrediction": 10, "ClipPredictionTag": 10}
    forest_only |= {"ClipEmbedding": 10, "SoundEvent": 2, "SoundEventPrediction": 2, "SoundEventPredictionTag": 2}
    forest_only |= {"SoundEventEmbedding": 2, "ClipAnnotation": 2, "ClipAnnotationTag": 2}
    forest_only |= {"InferenceJob": 1, "JobRecording": 2}
    with CaptureQueriesContext(connection) as queries:
        assert deletion.delete(Dataset, [two_datasets.wetlands.pk]) == 1
    assert remaining() == forest_only
    assert list(Dataset.objects.values_list("name", flat=True)) == ["Forest"]
    assert Tag.objects.count() == 1 and ModelRun.objects.count() == 1
    deletes = [q["sql"] for q in queries if q["sql"].startswith("DELETE")]
    assert len(deletes) == 1 and deletes[0].startswith("DELETE FROM echoroo_dataset WHERE")
    assert len(queries) <= 6  # lock, check for running jobs, the delete (+ savepoint bookkeeping)


def test_the_cost_of_a_deletion_does_not_grow_with_the_rows(two_datasets):
    small = Dataset.objects.create(name="Small")
    run = two_datasets.run
    fill(small, run, recordings=1, clips=1)
    with CaptureQueriesContext(connection) as few:
        deletion.delete(Dataset, [small.pk])
    with CaptureQueriesContext(connection) as many:
        deletion.delete(Dataset, [two_datasets.wetlands.pk])
    assert len(many) == len(few)


def test_deleting_recordings_takes_their_clips_and_keeps_the_dataset(two_datasets):
    first = two_datasets.wetlands.recordings.order_by("pk").first()
    assert deletion.delete(Recording, [first.pk]) == 1
    assert two_datasets.wetlands.recordings.count() == 2
    assert not Clip.objects.filter(recording_id=first.pk).exists()
    assert Clip.objects.count() == 2 * 20 + 2 * 5
    assert InferenceJob.objects.count() == 2  # the job stays, with its other recordings


def test_a_running_job_stops_the_deletion_and_nothing_is_deleted(two_datasets):
    job = InferenceJob.objects.get(dataset=two_datasets.wetlands)
    job.status = InferenceJob.Status.RUNNING
    job.save()
    before = remaining()
    for model, pk in ((Dataset, two_datasets.wetlands.pk), (Recording, job.job_recordings.first().recording_id)):
        with pytest.raises(deletion.DeletionRefused, match=f"inference job {job.uuid} is running on it: cancel it"):
            deletion.delete(model, [pk])
    assert remaining() == before
    assert deletion.delete(Dataset, [two_datasets.forest.pk]) == 1  # the other dataset may go


def test_deleting_a_model_run_drops_its_indexes_and_rows(two_datasets):
    run = ModelRun.objects.create(name="Perch", version="2.0", embedding_dimension=DIMENSION)
    clip = Clip.objects.first()
    ClipEmbedding.objects.create(clip=clip, model_run=run, embedding=[0.5] * DIMENSION)
    ensure_hnsw_index("clip", run.pk, DIMENSION)
    ensure_hnsw_index("sound_event", run.pk, DIMENSION)
    assert deletion.what_goes_with(ModelRun, [run.pk]) == {"clip embeddings": 1}
    names = [index_name("clip", run.pk), index_name("sound_event", run.pk)]
    with connection.cursor() as cursor:
        cursor.execute("SELECT count(*) FROM pg_indexes WHERE indexname = ANY(%s)", [names])
        assert cursor.fetchone()[0] == 2
    assert deletion.delete(ModelRun, [run.pk]) == 1
    with connection.cursor() as cursor:
        cursor.execute("SELECT count(*) FROM pg_indexes WHERE indexname = ANY(%s)", [names])
        assert cursor.fetchone()[0] == 0
    assert ClipEmbedding.objects.filter(model_run_id=run.pk).count() == 0
    assert Clip.objects.filter(pk=clip.pk).exists()
    # A run that inference jobs used stays: they are its history.
    with pytest.raises(deletion.DeletionRefused, match="used this model run: delete the job first"):
        deletion.delete(ModelRun, [two_datasets.run.pk])


def test_the_admin_counts_what_goes_and_deletes_in_one_statement(admin_user_logged_in, two_datasets):
    url = f"/admin/echoroo/dataset/{two_datasets.wetlands.pk}/delete/"
    page = admin_user_logged_in.get(url)
    assert page.status_code == 200
    text = page.content.decode()
    for shown in ("3 recordings", "60 clips", "60 clip predictions", "60 clip embeddings", "3 sound events"):
        assert shown in text, shown
    with CaptureQueriesContext(connection) as queries:
        response = admin_user_logged_in.post(url, {"post": "yes"})
    assert response.status_code == 302
    assert not Dataset.objects.filter(pk=two_datasets.wetlands.pk).exists()
    assert Clip.objects.count() == 10
    assert not [q for q in queries if q["sql"].startswith('DELETE FROM "echoroo_clip')]


def test_the_admin_names_the_running_job_and_deletes_nothing(admin_user_logged_in, two_datasets):
    InferenceJob.objects.filter(dataset=two_datasets.wetlands).update(status=InferenceJob.Status.RUNNING)
    url = "/admin/echoroo/recording/"
    pks = list(two_datasets.wetlands.recordings.values_list("pk", flat=True))
    response = admin_user_logged_in.post(url, {"action": "delete_selected", "_selected_action": pks, "post": "yes"})
    assert response.status_code == 200
    assert "is running on it: cancel it first" in response.content.decode()
    assert Recording.objects.filter(pk__in=pks).count() == 3


def test_the_api_deletes_a_dataset_or_answers_409_while_a_job_runs(api_client, user, two_datasets):
    Dataset.objects.filter(pk__in=[two_datasets.wetlands.pk, two_datasets.forest.pk]).update(created_by=user)
    InferenceJob.objects.filter(dataset=two_datasets.forest).update(status=InferenceJob.Status.RUNNING)
    busy = api_client.delete(f"/api/v1/datasets/{two_datasets.forest.uuid}/")
    assert busy.status_code == 409 and "cancel it first" in busy.json()["detail"]
    assert api_client.delete(f"/api/v1/datasets/{two_datasets.wetlands.uuid}/").status_code == 204
    assert Clip.objects.count() == 10 and Dataset.objects.count() == 1


def test_the_command_deletes_a_dataset_in_batches_with_a_progress_bar(two_datasets):
    from io import StringIO

    from django.core.management import call_command

    class Terminal(StringIO):
        def isatty(self):
            return True

    out, err = StringIO(), Terminal()
    with CaptureQueriesContext(connection) as queries:
        call_command("delete_dataset", "Wetlands", "--yes", "--batch-size", "2", stdout=out, stderr=err)
    assert "Dataset 'Wetlands'" in out.getvalue() and "3 recordings, 60 clips" in out.getvalue()
    assert "Deleted dataset 'Wetlands'" in out.getvalue()
    assert "Deleting" in err.getvalue() and "3/3" in err.getvalue()  # the progress bar reached the end
    deletes = [q["sql"] for q in queries if q["sql"].startswith("DELETE")]
    assert [sql.split(" WHERE")[0] for sql in deletes] == ["DELETE FROM echoroo_recording"] * 2 + [
        "DELETE FROM echoroo_dataset"
    ]
    assert list(Dataset.objects.values_list("name", flat=True)) == ["Forest"] and Clip.objects.count() == 10


def test_the_command_refuses_a_running_job_an_unknown_name_and_no_confirmation(two_datasets, monkeypatch):
    from django.core.management import CommandError, call_command

    InferenceJob.objects.filter(dataset=two_datasets.forest).update(status=InferenceJob.Status.RUNNING)
    with pytest.raises(CommandError, match="cannot be deleted now: inference job .* is running on it"):
        call_command("delete_dataset", str(two_datasets.forest.uuid), "--yes")
    with pytest.raises(CommandError, match="no dataset is named 'Wetland'; datasets: 'Forest', 'Wetlands'"):
        call_command("delete_dataset", "Wetland", "--yes")
    monkeypatch.setattr("sys.stdin.isatty", lambda: False)
    with pytest.raises(CommandError, match="add --yes"):
        call_command("delete_dataset", "Wetlands")
    assert Dataset.objects.count() == 2 and Clip.objects.count() == 70


def test_a_running_job_on_an_empty_dataset_stops_its_deletion_too(two_datasets):
    empty = Dataset.objects.create(name="Empty")
    job = InferenceJob.objects.create(model_run=two_datasets.run, dataset=empty, status=InferenceJob.Status.RUNNING)
    with pytest.raises(deletion.DeletionRefused, match=str(job.uuid)):
        deletion.delete(Dataset, [empty.pk])
    job.status = InferenceJob.Status.COMPLETED
    job.save()
    assert deletion.delete(Dataset, [empty.pk]) == 1 and not InferenceJob.objects.filter(pk=job.pk).exists()


def test_every_cascading_foreign_key_of_a_big_table_leads_an_index():
    """A cascade finds the rows of each deleted parent through an index led by the column (partial ones do
    not serve it): without one, deleting a dataset reads a whole table once per clip."""
    big = {"echoroo_clip", "echoroo_clipprediction", "echoroo_clipoutput", "echoroo_soundevent",
           "echoroo_soundeventprediction", "embeddings_clipembedding", "echoroo_clippredictiontag",
           "echoroo_soundeventpredictiontag", "embeddings_soundeventembedding"}  # fmt: skip
    missing = []
    with connection.cursor() as cursor:
        for table, column, target, _, on_delete in foreign_keys(apps):
            # Model runs and users are few: one scan a deleted one is fine.
            if on_delete not in DATABASE_RULES or table not in big or target in {"auth_user", "echoroo_modelrun"}:
                continue
            cursor.execute(
                "SELECT EXISTS (SELECT 1 FROM pg_index i JOIN pg_attribute a"
                " ON a.attrelid = i.indrelid AND a.attnum = i.indkey[0]"
                " WHERE i.indrelid = %s::regclass AND a.attname = %s AND i.indpred IS NULL)",
                [table, column],
            )
            if not cursor.fetchone()[0]:
                missing.append(f"{table}.{column}")
    assert missing == []
