"""The model files made before the first job (prepare_models), and a job that says "preparing the model" meanwhile."""

from __future__ import annotations

import numpy as np
import pytest
from django.core.management import call_command

from inference import runner, services
from inference.models import InferenceJob
from inference.runtimes import build_runtime

FOLDED = "BirdNET_GLOBAL_6K_V2.4_Model_FP32.folded.embedding-output."
ORIGINAL = "BirdNET_GLOBAL_6K_V2.4_Model_FP32.embedding-output."


def model_files(folder) -> dict[str, int]:
    return {path.name: path.stat().st_mtime_ns for path in folder.glob("*.tflite")}


def test_prepare_models_makes_the_copies_birdnet_loads_and_they_are_not_made_again(tmp_path, settings, capsys):
    settings.MODEL_CACHE_DIR = tmp_path / "cache"
    call_command("prepare_models")
    made = model_files(settings.MODEL_CACHE_DIR)
    assert any(name.startswith(FOLDED) for name in made) and any(name.startswith(ORIGINAL) for name in made)
    assert len(made) == 2
    printed = capsys.readouterr().out
    assert f"BirdNET: model files ready in {settings.MODEL_CACHE_DIR}" in printed
    # A worker loading BirdNET as the settings say finds them (the silent windows' original copy included)...
    runtime = build_runtime("birdnet", settings)
    runtime.predict_logits(np.zeros((1, runtime.window_samples), np.float32))
    # ...and neither it nor a second prepare_models writes them again.
    call_command("prepare_models")
    assert model_files(settings.MODEL_CACHE_DIR) == made


@pytest.mark.django_db
def test_a_job_says_preparing_the_model_while_a_worker_loads_it(
    field_recording, settings, tmp_path, api_client, user, client, monkeypatch
):
    # A cache folder of its own: this process has not loaded BirdNET with it, so the job's task loads it.
    settings.MODEL_CACHE_DIR = tmp_path / "cache"
    seen: dict[str, object] = {}
    load = runner.build_runtime

    def watched(name, project_settings, config):
        job = InferenceJob.objects.get(status=InferenceJob.Status.RUNNING)
        seen["activity"] = job.activity
        seen["api"] = api_client.get(f"/api/v1/inference/jobs/{job.uuid}/").json()["activity"]
        seen["progress"] = client.get("/jobs/progress.json", {"job": str(job.uuid)}).json()["jobs"][0]["activity"]
        seen["page"] = client.get(f"/jobs/{job.uuid}/").content.decode()
        return load(name, project_settings, config)

    monkeypatch.setattr(runner, "build_runtime", watched)
    user.is_staff = True
    user.save()
    client.force_login(user)
    job = services.create_job(model_name="birdnet", recording=field_recording, config={"confidence_threshold": 0.25})
    job = services.start_job(job, sync=True)

    assert seen["activity"] == seen["api"] == seen["progress"] == "preparing the model"
    assert "preparing the model…" in seen["page"]
    job.refresh_from_db()
    assert job.status == InferenceJob.Status.COMPLETED
    assert job.activity == ""
    assert api_client.get(f"/api/v1/inference/jobs/{job.uuid}/").json()["activity"] == ""
    assert "preparing the model" not in client.get(f"/jobs/{job.uuid}/").content.decode()

    # The model is loaded in this process now: a second job goes straight to work and says nothing.
    services.start_job(
        services.create_job(model_name="birdnet", recording=field_recording, config={"confidence_threshold": 0.5}),
        sync=True,
    )
    assert seen["activity"] == seen["api"] == seen["progress"] == ""
