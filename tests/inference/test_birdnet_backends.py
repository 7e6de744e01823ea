"""Which engine runs BirdNET: LiteRT on a CPU, PyTorch on a GPU, chosen from the settings and the job."""

from __future__ import annotations

import types

import numpy as np
import pytest

from inference.config import InferenceConfig
from inference.runtimes import birdnet as birdnet_module
from inference.runtimes.birdnet import BirdNetRuntime, resolve_backend


@pytest.fixture
def gpu(monkeypatch):
    """Pretend PyTorch sees a GPU (or not): only the question is answered, nothing runs on it."""

    def set_to(seen: bool) -> None:
        monkeypatch.setattr(birdnet_module, "_cuda_available", lambda: seen)

    return set_to


@pytest.mark.parametrize(
    ("backend", "use_gpu", "gpu_seen", "expected"),
    [
        ("auto", True, True, ("torch", "cuda")),
        ("auto", False, True, ("litert", "cpu")),
        ("auto", True, False, ("litert", "cpu")),
        ("torch", True, True, ("torch", "cuda")),
        ("torch", False, True, ("torch", "cpu")),
        ("torch", True, False, ("torch", "cpu")),
        ("litert", True, True, ("litert", "cpu")),
    ],
)
def test_the_backend_follows_the_setting_the_job_and_the_host(gpu, backend, use_gpu, gpu_seen, expected):
    gpu(gpu_seen)
    assert resolve_backend(backend, use_gpu) == expected


def test_an_unknown_backend_is_refused():
    with pytest.raises(ValueError, match="'auto', 'litert' or 'torch'"):
        resolve_backend("onnx", True)


def test_this_host_has_no_gpu_so_auto_is_litert():
    # CI and this machine: the CPU build of PyTorch sees no GPU.
    assert resolve_backend("auto", True) == ("litert", "cpu")


def settings(**values):
    defaults = {
        "BIRDNET_THREADS": 1,
        "MODEL_CACHE_DIR": "/tmp/unused",
        "BIRDNET_BACKEND": "auto",
        "BIRDNET_FRONTEND": "folded",
        "BIRDNET_GPU_BATCH": 512,
    }
    return types.SimpleNamespace(**{**defaults, **values})


def test_jobs_that_end_on_the_same_engine_share_one_model(gpu):
    gpu(False)
    with_gpu = BirdNetRuntime.options(settings(), InferenceConfig(use_gpu=True))
    without = BirdNetRuntime.options(settings(), InferenceConfig(use_gpu=False))
    assert with_gpu == without
    assert (with_gpu["backend"], with_gpu["use_gpu"]) == ("litert", False)


def test_a_gpu_host_runs_jobs_that_allow_it_on_pytorch(gpu):
    gpu(True)
    options = BirdNetRuntime.options(settings(BIRDNET_GPU_BATCH=1024), InferenceConfig(use_gpu=True))
    assert (options["backend"], options["use_gpu"], options["device_batch"]) == ("torch", True, 1024)
    assert BirdNetRuntime.options(settings(), InferenceConfig(use_gpu=False))["backend"] == "litert"


def test_the_torch_backend_on_a_cpu_runs_at_the_jobs_batch_size(runtime_cache_dir, field_recording_48k, birdnet):
    runtime = BirdNetRuntime(backend="torch", use_gpu=True, cache_dir=runtime_cache_dir)
    assert (runtime.backend, runtime.device, runtime.preferred_batch_size) == ("torch", "cpu", None)
    assert birdnet.preferred_batch_size is None
    windows = field_recording_48k[1][: 4 * 144_000].reshape(4, 144_000)
    logits, embeddings = runtime.predict_logits(windows)
    reference_logits, reference_embeddings = birdnet.predict_logits(windows)
    assert logits.dtype == embeddings.dtype == np.float32
    assert np.abs(logits - reference_logits).max() <= 1e-4
    assert np.abs(embeddings - reference_embeddings).max() <= 1e-4


@pytest.mark.django_db
def test_a_job_on_pytorch_finds_what_a_job_on_litert_finds(field_dataset, settings):
    from echoroo.models import SoundEventPredictionTag
    from inference import services

    def detections(job):
        return sorted(
            SoundEventPredictionTag.objects.filter(sound_event_prediction__job=job).values_list(
                "sound_event_prediction__sound_event__recording__path",
                "sound_event_prediction__sound_event__start_time",
                "sound_event_prediction__sound_event__end_time",
                "tag__value",
                "score",
            )
        )

    config = {"confidence_threshold": 0.1}
    on_litert = services.start_job(
        services.create_job(model_name="birdnet", dataset=field_dataset, config=config), sync=True
    )
    settings.BIRDNET_BACKEND = "torch"
    # A threshold below the stored output's floor (0.012) runs the model again, on PyTorch.
    lower = {**config, "confidence_threshold": 0.01}
    on_torch = services.start_job(
        services.create_job(model_name="birdnet", dataset=field_dataset, config=lower), sync=True
    )
    assert on_torch.job_recordings.filter(reused=True).count() == 0
    ours = [row for row in detections(on_torch) if row[4] > 0.1 + 1e-3]
    theirs = [row for row in detections(on_litert) if row[4] > 0.1 + 1e-3]
    assert theirs, "the comparison means nothing without detections"
    assert [row[:4] for row in ours] == [row[:4] for row in theirs]
    assert max(abs(a[4] - b[4]) for a, b in zip(ours, theirs, strict=True)) <= 1e-4
