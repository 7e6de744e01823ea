"""django-q2 entry points: plain functions with plain arguments; the work is in inference.runner."""

from echoroo.models import ModelRun
from embeddings.indexes import build_index_if_needed, index_state
from inference.models import InferenceJob
from inference.runner import run_job_recording as _run_job_recording
from inference.runner import run_job_recordings as _run_job_recordings

# How long a queued index build may run (the queue's default is an hour, a recording's task).
INDEX_BUILD_TIMEOUT_S = 12 * 3600


def run_job_recording(job_id: int, recording_id: int) -> str:
    """Process one recording of a job (queued by inference.services.start_job)."""
    return _run_job_recording(job_id, recording_id)


def run_job_recordings(job_id: int, recording_ids: list[int]) -> list[str]:
    """Process several short recordings of a job in one task (together, on a GPU)."""
    return _run_job_recordings(job_id, recording_ids)


def build_embedding_index(model_run_id: int) -> str:
    """Build a model run's HNSW index if a large load deferred it (or a build failed), once no job writes the run.

    Queued when a job ends (queue_embedding_index); a job still writing the run's embeddings
    queues it again when it ends, so the graph is built once, after the last load.
    """
    writing = InferenceJob.objects.filter(model_run_id=model_run_id, status=InferenceJob.Status.RUNNING).exclude(
        config__store_embeddings=False
    )
    if writing.exists():
        return "waiting: a job is still writing the run's embeddings"
    dimension = ModelRun.objects.values_list("embedding_dimension", flat=True).get(pk=model_run_id)
    if not dimension:
        return "no embedding dimension"
    return build_index_if_needed("clip", model_run_id, dimension)


def queue_embedding_index(model_run_id: int) -> None:
    """When a job ends: queue build_embedding_index if the run's index is missing or invalid."""
    if index_state("clip", model_run_id) == "valid":
        return
    from django_q.tasks import async_task

    async_task(
        "inference.tasks.build_embedding_index",
        model_run_id,
        task_name=f"hnsw-index-run-{model_run_id}",
        # A build is minutes a million rows (README, "Scaling similarity search"); a copy handed out again
        # while it runs finds the run's lock taken and returns.
        timeout=INDEX_BUILD_TIMEOUT_S,
    )
