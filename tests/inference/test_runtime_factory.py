"""Each runtime builds itself from settings and a job's config; nothing above the runtime layer names a model."""

from __future__ import annotations

import ast
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

from echoroo.models import ClipPrediction, Dataset
from inference import runner, services
from inference.config import MODEL_SETTINGS, ConfigError, InferenceConfig
from inference.forms import InferenceJobForm
from inference.models import InferenceJob
from inference.runtimes import RUNTIMES, Label, ModelRuntime, build_runtime, runtime_class
from inference.runtimes.birdnet import BirdNetRuntime
from inference.runtimes.perch import PerchRuntime
from tests.inference.test_admin_jobs import choose_action, submit_action

ROOT = Path(__file__).resolve().parents[2]


class ToyRuntime(ModelRuntime):
    """A model added by one file and one line in RUNTIMES: label 0 scores each window's peak level."""

    name = "toy"
    version = "1"
    sample_rate = 8000
    window_s = 1.0
    embedding_dim = 4
    labels = (Label("Peakus loudus", "Loud peak"), Label("Quietus"))
    display_name = "Toy model"
    can_use_gpu = False
    job_settings = frozenset({"species_filter_threshold"})

    def __init__(self, *, level: str = "", use_gpu: bool = False) -> None:
        self.level = level
        self.use_gpu = use_gpu

    @classmethod
    def options(cls, settings, config) -> dict:
        return {"level": settings.TOY_LEVEL, "use_gpu": config.use_gpu}

    @classmethod
    def unavailable_reason(cls, settings) -> str | None:
        return None if settings.TOY_LEVEL else "TOY_LEVEL is not set: set it to anything"

    @classmethod
    def known_labels(cls, settings) -> tuple[Label, ...]:
        return cls.labels

    def predict_logits(self, batch: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        batch = self._check_batch(batch)
        peak = np.clip(np.abs(batch).max(axis=1), 1e-6, 1 - 1e-6)
        logits = np.stack([np.log(peak / (1 - peak)), np.full(len(batch), -10.0)], axis=1).astype(np.float32)
        embeddings = np.stack([peak, peak, peak, peak], axis=1).astype(np.float32)
        return logits, embeddings


@pytest.fixture
def toy(monkeypatch, settings):
    """The toy model registered beside the real ones, with its setting set."""
    monkeypatch.setitem(RUNTIMES, "toy", f"{__name__}:ToyRuntime")
    settings.TOY_LEVEL = "loud"
    return ToyRuntime


# --- The factory -------------------------------------------------------------------------------


def test_build_runtime_builds_the_runtime_from_the_settings_and_the_jobs_config(toy):
    on_cpu = build_runtime("toy", SimpleNamespace(TOY_LEVEL="quiet"), InferenceConfig(use_gpu=False))
    assert isinstance(on_cpu, ToyRuntime) and (on_cpu.level, on_cpu.use_gpu) == ("quiet", False)
    assert build_runtime("toy", SimpleNamespace(TOY_LEVEL="quiet"), InferenceConfig(use_gpu=False)) is on_cpu
    assert build_runtime("toy", SimpleNamespace(TOY_LEVEL="quiet")).use_gpu is InferenceConfig().use_gpu


def test_a_jobs_runtime_is_built_from_djangos_settings(toy, settings):
    settings.TOY_LEVEL = "from-django"
    runtime = runner.load_runtime("toy", InferenceConfig(use_gpu=False))
    assert (runtime.level, runtime.use_gpu) == ("from-django", False)


def test_birdnet_takes_its_threads_model_cache_and_engine_from_the_settings(tmp_path):
    settings = SimpleNamespace(
        BIRDNET_THREADS=3,
        MODEL_CACHE_DIR=tmp_path,
        BIRDNET_BACKEND="litert",
        BIRDNET_FRONTEND="original",
        BIRDNET_GPU_BATCH=64,
    )
    options = BirdNetRuntime.options(settings, InferenceConfig(sensitivity=1.4, use_gpu=True))
    assert options["num_threads"] == 3 and options["cache_dir"] == tmp_path
    assert (options["backend"], options["frontend"], options["device_batch"]) == ("litert", "original", 64)
    assert options["use_gpu"] is False  # LiteRT runs on the CPU whatever the job asks
    assert "sensitivity" not in options  # the job's selection, not the model's: every job shares one model


def test_perch_takes_its_model_from_the_settings_and_the_gpu_from_the_job():
    options = PerchRuntime.options(SimpleNamespace(PERCH_MODEL="/models/perch"), InferenceConfig(use_gpu=False))
    assert options == {"model": "/models/perch", "use_gpu": False}
    assert PerchRuntime.options(SimpleNamespace(PERCH_MODEL=""), InferenceConfig())["model"] is None


def test_perch_is_unavailable_until_perch_model_is_set():
    assert "PERCH_MODEL is not set" in PerchRuntime.unavailable_reason(SimpleNamespace(PERCH_MODEL=""))
    assert PerchRuntime.unavailable_reason(SimpleNamespace(PERCH_MODEL="/models/perch")) is None


def test_birdnet_knows_its_labels_before_loading_and_perch_only_once_loaded():
    names = BirdNetRuntime.known_label_names(SimpleNamespace())
    assert "Turdus migratorius_American Robin" in names and "Turdus migratorius" in names
    assert PerchRuntime.known_label_names(SimpleNamespace(PERCH_MODEL="/models/perch")) is None


def test_a_runtime_without_a_display_name_is_shown_by_its_name():
    class Unnamed(ToyRuntime):
        name = "unnamed"

    assert Unnamed.display_name == "unnamed" and ToyRuntime.display_name == "Toy model"


# --- The job form shows what the model reads ---------------------------------------------------


@pytest.mark.parametrize("model_name", ["birdnet", "perch"])
def test_use_a_gpu_is_offered_where_the_model_can_use_one(model_name):
    assert ("use_gpu" in InferenceJobForm(model_name=model_name).fields) == runtime_class(model_name).can_use_gpu


def test_a_new_models_form_shows_the_common_settings_and_its_own_only(toy):
    fields = InferenceJobForm(model_name="toy").fields
    assert "confidence_threshold" in fields and "custom_species_list" in fields
    assert {name for name in MODEL_SETTINGS if name in fields} == {"species_filter_threshold"}


def test_the_form_with_a_choice_of_models_names_them_and_says_which_reads_a_setting(toy):
    form = InferenceJobForm()
    assert ("toy", "Toy model") in form.fields["model_name"].choices
    assert ("birdnet", "BirdNET") in form.fields["model_name"].choices
    assert form.fields["sensitivity"].help_text.endswith("Only for BirdNET.")
    assert form.fields["use_gpu"].help_text.endswith("Only for BirdNET and Perch.")
    assert form.fields["species_filter_threshold"].help_text.endswith("Only for BirdNET and Toy model.")
    assert "Only for" not in form.fields["confidence_threshold"].help_text


# --- A new model in the services and the admin, with no change above its runtime ---------------


@pytest.mark.django_db
def test_create_job_refuses_a_model_that_is_unavailable_saying_why(toy, settings, field_recording):
    settings.TOY_LEVEL = ""
    with pytest.raises(ConfigError) as refused:
        services.create_job(model_name="toy", recording=field_recording)
    assert refused.value.errors["model_name"] == "TOY_LEVEL is not set: set it to anything"


@pytest.mark.django_db
def test_create_job_checks_a_species_list_against_the_labels_the_model_knows(toy, field_recording):
    with pytest.raises(ConfigError) as refused:
        services.create_job(model_name="toy", recording=field_recording, config={"custom_species_list": ["Robin"]})
    assert refused.value.errors["custom_species_list"].startswith("not a species Toy model knows: 'Robin'")
    job = services.create_job(
        model_name="toy", recording=field_recording, config={"custom_species_list": ["Peakus loudus"]}
    )
    assert job.model_run.name == "toy" and job.model_run.embedding_dimension == 4


@pytest.mark.django_db
def test_a_new_model_runs_a_job_to_its_detections(toy, field_recording):
    job = services.create_job(model_name="toy", recording=field_recording, config={"confidence_threshold": 0.01})
    job = services.start_job(job, sync=True)
    assert job.status == InferenceJob.Status.COMPLETED
    assert ClipPrediction.objects.filter(job=job, tags__tag__value="Peakus loudus_Loud peak").exists()


@pytest.mark.django_db
def test_a_new_model_has_its_run_action_in_the_admin(toy, admin_client, field_dataset):
    response = choose_action(admin_client, Dataset, "run_toy", [field_dataset])
    content = response.content.decode()
    assert response.status_code == 200 and "Run Toy model" in content
    assert 'name="species_filter_threshold"' in content and 'name="use_gpu"' not in content
    assert 'name="week"' not in content and "Location filter" in content
    response = submit_action(admin_client, Dataset, "run_toy", [field_dataset], start_now=False)
    assert response.status_code == 302
    assert InferenceJob.objects.get().model_run.name == "toy"


# --- Nothing above the runtime layer names a model ---------------------------------------------

SCANNED = ("echoroo", "inference", "search", "classifiers", "validation", "embeddings")
RUNTIMES_DIR = ROOT / "inference" / "runtimes"
# The modules of the runtime package any layer may use: the registry, the interface and the week helper.
SHARED_RUNTIME_MODULES = ("__init__", "base", "week")


def model_modules() -> set[str]:
    """The runtime package's modules of one model or backend (birdnet, perch, their helpers)."""
    return {f"inference.runtimes.{path.stem}" for path in RUNTIMES_DIR.glob("*.py")} - {
        f"inference.runtimes.{stem}" for stem in SHARED_RUNTIME_MODULES
    }


def naming_a_model(tree: ast.AST, models: set[str], modules: set[str]) -> list[tuple[int, str]]:
    """(line, what) of each string equal to a model's name or a model's module, and each import of such a module."""
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Constant) and isinstance(node.value, str):
            if node.value in models or node.value.partition(":")[0] in modules:
                found.append((node.lineno, repr(node.value)))
        elif isinstance(node, ast.Import):
            found += [(node.lineno, f"import {alias.name}") for alias in node.names if alias.name in modules]
        elif isinstance(node, ast.ImportFrom) and node.module:
            imported = {node.module, *(f"{node.module}.{alias.name}" for alias in node.names)}
            if imported & modules:
                found.append((node.lineno, f"import from {node.module}"))
    return found


def test_no_module_above_the_runtime_layer_names_a_model():
    models, modules = set(RUNTIMES), model_modules()
    offences = []
    for package in SCANNED:
        for path in sorted((ROOT / package).rglob("*.py")):
            if RUNTIMES_DIR in path.parents:
                continue
            for line, what in naming_a_model(ast.parse(path.read_text(encoding="utf-8")), models, modules):
                offences.append(f"{path.relative_to(ROOT)}:{line}: {what}")
    assert not offences, "ask the runtime class instead (inference.runtimes):\n" + "\n".join(offences)


def test_the_scan_finds_a_model_named_in_code():
    source = (
        "from inference.runtimes.perch import DOWNLOAD_HELP\n"
        "from inference.runtimes import birdnet, build_runtime\n"
        "from inference.runtimes.week import ALL_YEAR\n"
        'if name == "birdnet":\n'
        '    load("inference.runtimes.perch:PerchRuntime")\n'
    )
    found = naming_a_model(ast.parse(source), {"birdnet", "perch"}, model_modules())
    assert sorted(line for line, _ in found) == [1, 2, 4, 5]
