"""What inference jobs mean for deletions (echoroo.deletion): a running job stops one; a job's rows go with it."""

from __future__ import annotations

from django.db.models import Q

from echoroo.deletion import Rules, register
from echoroo.models import ClipPrediction, Dataset, ModelRun, Recording, SoundEventPrediction


def _running(q: Q):
    from inference.models import InferenceJob

    return InferenceJob.objects.filter(status=InferenceJob.Status.RUNNING).filter(q).distinct().order_by("pk")


def _running_on(q: Q):
    return lambda pks: [f"inference job {job.uuid} is running on it: cancel it first" for job in _running(q(pks))]


def delete_sound_events_of_jobs(cursor, job_ids: list[int]) -> None:
    """A job's merged detections are sound events made for it: they go with it (its other rows cascade
    from the job itself; the model's raw output and the embeddings stay, they are the model run's)."""
    cursor.execute(
        "DELETE FROM echoroo_soundevent WHERE id IN "
        "(SELECT sound_event_id FROM echoroo_soundeventprediction WHERE job_id = ANY(%s))",
        [job_ids],
    )


def _jobs_using(pks: list[int]) -> list[str]:
    from inference.models import InferenceJob

    named = InferenceJob.objects.filter(model_run__in=pks).order_by("pk")
    return [f"inference job {job.uuid} ({job.status}) used this model run: delete the job first" for job in named]


def register_rules() -> None:
    register(
        Rules(
            Dataset,
            obstacles=_running_on(
                lambda pks: (
                    Q(dataset__in=pks) | Q(recording__dataset__in=pks) | Q(job_recordings__recording__dataset__in=pks)
                )
            ),
        )
    )
    register(
        Rules(Recording, obstacles=_running_on(lambda pks: Q(recording__in=pks) | Q(job_recordings__recording__in=pks)))
    )
    register(Rules(ModelRun, obstacles=_jobs_using))
    register(
        Rules(
            "inference.InferenceJob",
            goes_with=lambda pks: {
                "window detections": ClipPrediction.objects.filter(job__in=pks),
                "merged detections": SoundEventPrediction.objects.filter(job__in=pks),
            },
            obstacles=lambda pks: [
                f"inference job {job.uuid} is running: cancel it first" for job in _running(Q(pk__in=pks))
            ],
            before=delete_sound_events_of_jobs,
        )
    )
