"""backfill_embeddings: the embeddings a job without them would have stored, computed afterwards, once."""

import io

import numpy as np
import pytest
from django.core.management import CommandError, call_command

from echoroo.models import Clip, ClipOutput, ClipPrediction
from embeddings.models import ClipEmbedding
from inference import services

pytestmark = pytest.mark.django_db


def run_job(target, **config):
    kwargs = {"dataset": target} if hasattr(target, "recordings") else {"recording": target}
    job = services.create_job(model_name="birdnet", config={"confidence_threshold": 0.25, **config}, **kwargs)
    return services.start_job(job, sync=True)


def backfill(*args) -> str:
    out = io.StringIO()
    call_command("backfill_embeddings", *args, stdout=out, stderr=io.StringIO())
    return out.getvalue()


def stored_vectors() -> dict[tuple[int, float, float], np.ndarray]:
    return {
        (e.clip.recording_id, e.clip.start_time, e.clip.end_time): np.asarray(e.embedding, dtype=np.float32)
        for e in ClipEmbedding.objects.select_related("clip")
    }


def test_backfill_restores_the_embeddings_a_job_would_have_stored(field_dataset):
    # At 0.9 some windows of 1min.wav have no detection, but the model scored every window (each has
    # its raw output). rugr_drum.wav lasts 10 s: its last window, 9-10 s, is zero-padded.
    minute = field_dataset.recordings.get(path__endswith="1min.wav")
    drum = field_dataset.recordings.get(path__endswith="rugr_drum.wav")
    run_job(minute, store_embeddings=False, confidence_threshold=0.9)
    run_job(drum, store_embeddings=False, confidence_threshold=0.01)
    predicted = set(ClipPrediction.objects.values_list("clip__recording_id", "clip__start_time", "clip__end_time"))
    assert 0 < len(predicted) < 24 and (drum.pk, 9.0, 10.0) in predicted and not ClipEmbedding.objects.exists()
    scored = set(ClipOutput.objects.values_list("clip__recording_id", "clip__start_time", "clip__end_time"))
    assert len(scored) == 24 and predicted < scored

    assert "Added" in backfill("--model", "birdnet", "--batch-size", "4")
    backfilled = stored_vectors()
    assert set(backfilled) == scored  # the windows the model scored, and only those

    # What a job with embeddings stores for the same windows (to within halfvec's precision: a segment
    # resampled on its own may round a value to the neighbouring half-precision number).
    ClipEmbedding.objects.all().delete()
    run_job(field_dataset, store_embeddings=True)
    by_job = stored_vectors()
    assert len(by_job) == 24
    for span, vector in backfilled.items():
        np.testing.assert_allclose(vector, by_job[span], rtol=2e-3, atol=2e-3, err_msg=str(span))


def test_backfill_is_idempotent(field_recording):
    run_job(field_recording, store_embeddings=False)
    backfill()
    before = stored_vectors()
    assert "nothing to do" in backfill()
    assert stored_vectors().keys() == before.keys()


def test_backfill_keeps_to_its_dataset(field_dataset, field_recording):
    run_job(field_recording, store_embeddings=False)
    with pytest.raises(CommandError, match="no dataset is named 'Elsewhere'"):
        backfill("--dataset", "Elsewhere")
    from echoroo.models import Dataset

    Dataset.objects.create(name="Elsewhere")
    assert "nothing to do" in backfill("--dataset", "Elsewhere")
    backfill("--dataset", field_dataset.name)
    assert ClipEmbedding.objects.count() == ClipPrediction.objects.count()


def test_a_bad_file_fails_its_recording_and_the_others_go_on(field_dataset):
    run_job(field_dataset, store_embeddings=False)
    drum = field_dataset.recordings.get(path__endswith="rugr_drum.wav")
    assert ClipPrediction.objects.filter(clip__recording=drum).exists()
    drum.absolute_path.write_bytes(b"not audio any more")
    errors = io.StringIO()
    with pytest.raises(CommandError, match="1 of 2 recordings failed"):
        call_command("backfill_embeddings", stdout=io.StringIO(), stderr=errors)
    assert f"{drum.path}: " in errors.getvalue() and "not a readable audio file" in errors.getvalue()
    embedded = Clip.objects.filter(embeddings__isnull=False)
    assert embedded.exists() and not embedded.filter(recording=drum).exists()


def test_without_a_run_of_the_model_there_is_nothing_to_backfill(db):
    with pytest.raises(CommandError, match="no job has run birdnet"):
        backfill()
