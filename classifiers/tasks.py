"""django-q2 entry points: plain functions with plain arguments; the work is in classifiers.applying."""

from django.conf import settings

from classifiers.applying import run_apply_job


def apply_classifier(job_id: int, part: int = 1) -> str:
    """Score a classifier's embeddings (queued by classifiers.services.start_apply).

    A part stops well inside the queue's task timeout and queues the next part, so a library of
    any size is applied in parts that each finish, resuming from the last batch stored.
    """
    state = run_apply_job(job_id, time_limit_s=settings.Q_CLUSTER["timeout"] / 2)
    if state == "paused":
        from classifiers.services import enqueue_apply

        enqueue_apply(job_id, part + 1)
    return state
