"""`manage.py infer` and `manage.py export_detections` on real audio, through call_command."""

import csv
import re
from io import StringIO

import pytest
from django.conf import settings
from django.core.management import CommandError, call_command
from django.utils import timezone
from django_q.models import OrmQ

from echoroo.models import SPECIES, Clip, ClipPrediction, ClipPredictionTag, ModelRun, SoundEventPredictionTag, Tag
from inference import services
from inference.config import FIELD_NAMES, InferenceConfig
from inference.exports import split_label
from inference.management.commands import infer as infer_command
from inference.models import InferenceJob, JobRecording
from inference.runner import run_job_recording

pytestmark = pytest.mark.django_db

RAVEN_HEADER = [
    "Selection",
    "View",
    "Channel",
    "Begin Time (s)",
    "End Time (s)",
    "Low Freq (Hz)",
    "High Freq (Hz)",
    "Common Name",
    "Species Code",
    "Confidence",
    "Begin Path",
    "File Offset (s)",
]
CSV_HEADER = "Start (s),End (s),Scientific name,Common name,Confidence,File"
FOUR_DECIMALS = re.compile(r"^[01]\.\d{4}$")


def run(command: str, *args) -> str:
    """Run a command; return its stdout (stderr stays free of anything but a progress bar, off here)."""
    stdout, stderr = StringIO(), StringIO()
    call_command(command, *map(str, args), stdout=stdout, stderr=stderr)
    assert stderr.getvalue() == ""
    return stdout.getvalue()


@pytest.fixture
def synced(field_dataset) -> InferenceJob:
    """BirdNET over the field dataset in this process, with overlapping windows so that detections merge."""
    run(
        "infer", "--model", "birdnet", "--dataset", field_dataset.name, "--sync", "--confidence-threshold", 0.25,
        "--overlap", 1.5,
    )  # fmt: skip
    return InferenceJob.objects.get()


def csv_rows(path) -> list[dict]:
    with path.open(newline="", encoding="utf-8") as table:
        return list(csv.DictReader(table))


# infer


def test_infer_sync_runs_the_job_here_and_stores_predictions(field_recording):
    output = run(
        "infer", "--model", "birdnet", "--recording", field_recording.uuid, "--sync", "--confidence-threshold", 0.25
    )
    job = InferenceJob.objects.get()
    assert job.status == InferenceJob.Status.COMPLETED and job.recording == field_recording
    assert job.config == InferenceConfig(confidence_threshold=0.25).as_json()  # only the options given
    scores = list(ClipPredictionTag.objects.values_list("score", flat=True))
    assert scores and min(scores) >= 0.25
    assert f"Job {job.uuid} completed" in output
    assert f"1 recording done, 0 failed, 0 cancelled. Stored for them by birdnet 2.4: {len(scores)} window" in output


@pytest.mark.parametrize(
    "arguments, option, message",
    [
        (["--recording", "{recording}", "--overlap", "3"], "--overlap", "smaller than the model's 3 s window"),
        ([], "--dataset", "one of the arguments --dataset --recording is required"),
        (["--dataset", "Winter season"], "--dataset", "no dataset named 'Winter season'; the datasets are: Field"),
        (["--recording", "not-a-uuid"], "--recording", "is not a UUID"),
        (["--recording", "{recording}", "--species-list", "{species}"], "--species-list", "'Dodo ineptus'"),
        (["--recording", "{recording}", "--lat", "42.5"], "--lon", "give both or neither"),
        (["--recording", "{recording}", "--batch-size", "0"], "--batch-size", "between 1 and"),
        (["--recording", "{recording}", "--no-embeddings", "--no-predictions"], "--no-predictions", "store nothing"),
    ],
)
def test_infer_refuses_bad_arguments_naming_the_option(field_recording, tmp_path, arguments, option, message):
    species = tmp_path / "species.txt"
    species.write_text("Hylocichla mustelina_Wood Thrush\nDodo ineptus  # extinct, and not in BirdNET\n")
    arguments = [arg.format(recording=field_recording.uuid, species=species) for arg in arguments]
    with pytest.raises(CommandError) as refused:
        run("infer", "--model", "birdnet", *arguments, "--sync")
    assert option in str(refused.value) and message in str(refused.value)
    assert not InferenceJob.objects.exists()


def test_every_config_field_has_an_option():
    assert set(infer_command.CONFIG_OPTIONS) == set(FIELD_NAMES)


def test_species_list_and_switches_reach_the_config(field_recording, tmp_path):
    species = tmp_path / "species.txt"
    species.write_text("# the thrushes\nHylocichla mustelina_Wood Thrush\n\nTurdus migratorius  # by scientific name\n")
    run(
        "infer", "--model", "birdnet", "--recording", field_recording.uuid, "--species-list", species, "--no-embeddings"
    )
    job = InferenceJob.objects.get()
    assert (
        job.config
        == InferenceConfig(
            # Stored as the model's labels, whichever name the file gives.
            custom_species_list=("Hylocichla mustelina_Wood Thrush", "Turdus migratorius_American Robin"),
            store_embeddings=False,
        ).as_json()
    )


def test_infer_queues_one_task_per_recording_and_prints_the_job(field_dataset, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        output = run("infer", "--model", "birdnet", "--dataset", field_dataset.name)
    job = InferenceJob.objects.get()
    assert job.status == InferenceJob.Status.RUNNING
    assert OrmQ.objects.count() == 2
    assert f"Job {job.uuid}" in output and "Queued 2 recordings" in output
    assert f"/api/v1/inference/jobs/{job.uuid}/" in output


def test_infer_wait_follows_the_job_until_the_workers_finish_it(field_dataset, monkeypatch):
    def workers_run_the_tasks(seconds):
        for job_id, recording_id in JobRecording.objects.filter(status="pending").values_list("job", "recording"):
            run_job_recording(job_id, recording_id)

    monkeypatch.setattr(infer_command, "sleep", workers_run_the_tasks)
    output = run("infer", "--model", "birdnet", "--dataset", field_dataset.name, "--wait")
    job = InferenceJob.objects.get()
    assert job.status == InferenceJob.Status.COMPLETED
    assert f"Job {job.uuid} completed in" in output and "2 recordings done, 0 failed" in output


def test_ctrl_c_while_waiting_leaves_the_job_to_the_workers(field_recording, monkeypatch):
    def interrupted(seconds):
        raise KeyboardInterrupt

    monkeypatch.setattr(infer_command, "sleep", interrupted)
    with pytest.raises(CommandError) as stopped:
        run("infer", "--model", "birdnet", "--recording", field_recording.uuid, "--wait")
    job = InferenceJob.objects.get()
    assert job.status == InferenceJob.Status.RUNNING
    assert stopped.value.returncode == 130
    assert f"job {job.uuid} goes on in the workers" in str(stopped.value)
    assert f"DELETE /api/v1/inference/jobs/{job.uuid}/" in str(stopped.value)


def test_infer_exits_non_zero_when_the_job_fails(field_recording):
    field_recording.absolute_path.unlink()
    stdout = StringIO()
    with pytest.raises(CommandError) as failed:
        call_command("infer", "--model", "birdnet", "--recording", str(field_recording.uuid), "--sync", stdout=stdout)
    assert "failed" in str(failed.value) and failed.value.returncode == 1
    assert f"failed: {field_recording.path}:" in stdout.getvalue()


# export_detections


def export(job: InferenceJob, file_format: str, output, *options) -> str:
    return run(
        "export_detections", "--dataset", job.dataset.name, "--format", file_format, "--output", output, *options
    )


def audio_path(recording) -> str:
    return str(settings.AUDIO_ROOT / recording.path)


def test_csv_has_birdnet_analyzers_columns_and_a_row_per_window_and_species(synced, tmp_path):
    output = export(synced, "csv", tmp_path / "detections.csv")
    assert (tmp_path / "detections.csv").read_text().splitlines()[0] == CSV_HEADER
    rows = csv_rows(tmp_path / "detections.csv")
    assert len(rows) == ClipPredictionTag.objects.count() > 0
    assert f"Wrote {len(rows)} window predictions of birdnet 2.4" in output
    assert all(FOUR_DECIMALS.match(row["Confidence"]) for row in rows)
    labels = {f"{row['Scientific name']}_{row['Common name']}" for row in rows}
    assert labels == set(ClipPredictionTag.objects.values_list("tag__value", flat=True))
    assert {row["File"] for row in rows} <= {audio_path(recording) for recording in synced.dataset.recordings.all()}
    order = [(row["File"], float(row["Start (s)"]), -float(row["Confidence"])) for row in rows]
    assert order == sorted(order)
    assert all(0 < float(row["End (s)"]) - float(row["Start (s)"]) <= 3.0 for row in rows)  # windows


def test_min_score_keeps_the_rows_scoring_at_least_that(synced, tmp_path):
    export(synced, "csv", tmp_path / "confident.csv", "--min-score", 0.5)
    rows = csv_rows(tmp_path / "confident.csv")
    assert len(rows) == ClipPredictionTag.objects.filter(score__gte=0.5).count()
    assert 0 < len(rows) < ClipPredictionTag.objects.count()
    assert min(float(row["Confidence"]) for row in rows) >= 0.5


def test_raven_writes_one_selection_table_per_recording(synced, tmp_path, django_assert_max_num_queries):
    with django_assert_max_num_queries(8):  # however many rows: no query per row
        export(synced, "raven", tmp_path / "tables")
    tables = sorted((tmp_path / "tables").rglob("*.txt"))
    assert [str(table.relative_to(tmp_path / "tables")) for table in tables] == [
        "Field_season/1min.BirdNET.selection.table.txt",
        "Field_season/rugr_drum.BirdNET.selection.table.txt",
    ]
    species_codes = {}
    for table, recording in zip(tables, synced.dataset.recordings.order_by("path"), strict=True):
        header, rows = read_table(table)
        assert header == RAVEN_HEADER
        assert len(rows) == ClipPredictionTag.objects.filter(clip_prediction__clip__recording=recording).count() > 0
        assert [int(row["Selection"]) for row in rows] == list(range(1, len(rows) + 1))
        for row in rows:
            assert [row[column] for column in ("View", "Channel", "Low Freq (Hz)", "High Freq (Hz)")] == [
                "Spectrogram 1",
                "1",
                "0",
                "15000",  # BirdNET-Analyzer's band ends at 15 kHz, below these 32 kHz recordings' Nyquist frequency
            ]
            assert row["Begin Path"] == audio_path(recording) and row["File Offset (s)"] == row["Begin Time (s)"]
            assert FOUR_DECIMALS.match(row["Confidence"])
        species_codes.update((row["Common Name"], row["Species Code"]) for row in rows)
    assert species_codes["Wood Thrush"] == "woothr"  # the eBird code


def empty_path(job) -> str:
    return audio_path(job.dataset.recordings.get(path__endswith="rugr_drum.wav"))


def read_table(path) -> tuple[list[str], list[dict]]:
    with path.open(newline="", encoding="utf-8") as table:
        reader = csv.DictReader(table, delimiter="\t")
        return reader.fieldnames, list(reader)


def test_a_recording_without_rows_gets_a_table_saying_nocall(synced, tmp_path):
    export(synced, "raven", tmp_path / "tables", "--min-score", 0.99)
    empty = tmp_path / "tables" / "Field_season" / "rugr_drum.BirdNET.selection.table.txt"
    nocall = f"1\tSpectrogram 1\t1\t0\t3\t0\t15000\tnocall\tnocall\t1.0\t{empty_path(synced)}\t0"
    assert empty.read_text() == "\t".join(RAVEN_HEADER) + "\n" + nocall + "\n"
    assert not ClipPredictionTag.objects.filter(
        clip_prediction__clip__recording__path__endswith="rugr_drum.wav", score__gte=0.99
    )


def test_a_label_without_a_common_name_stands_for_both_names():
    assert split_label("Hylocichla mustelina_Wood Thrush") == ("Hylocichla mustelina", "Wood Thrush")
    assert split_label("Turdus migratorius") == ("Turdus migratorius", "Turdus migratorius")


def test_audacity_writes_labels_per_recording(synced, tmp_path):
    export(synced, "audacity", tmp_path / "labels")
    files = sorted((tmp_path / "labels").rglob("*.txt"))
    assert [str(path.relative_to(tmp_path / "labels")) for path in files] == [
        "Field_season/1min.BirdNET.results.txt",
        "Field_season/rugr_drum.BirdNET.results.txt",
    ]
    lines = [line.split("\t") for path in files for line in path.read_text().splitlines()]
    assert len(lines) == ClipPredictionTag.objects.count()
    for start, end, label, confidence in lines:
        assert float(start) < float(end)
        assert re.fullmatch(r"[^,_]+, [^,_]+", label) and FOUR_DECIMALS.match(confidence)
    assert any(label == "Hylocichla mustelina, Wood Thrush" for _, _, label, _ in lines)


def test_merged_writes_one_row_per_detection(synced, tmp_path):
    export(synced, "csv", tmp_path / "merged.csv", "--merged")
    rows = csv_rows(tmp_path / "merged.csv")
    assert len(rows) == SoundEventPredictionTag.objects.count()
    assert len(rows) < ClipPredictionTag.objects.count()  # overlapping windows merged
    assert max(float(row["End (s)"]) - float(row["Start (s)"]) for row in rows) > 3.0


def test_a_job_implies_its_recordings_and_model_run(synced, tmp_path):
    run("export_detections", "--job", synced.uuid, "--format", "csv", "--output", tmp_path / "job.csv")
    assert len(csv_rows(tmp_path / "job.csv")) == ClipPredictionTag.objects.count()


@pytest.fixture
def two_jobs(field_dataset) -> dict:
    """BirdNET twice over the field dataset: at 0.1, then at 0.25 (selected from the first's stored output)."""
    outputs = {}
    for name, threshold in (("loose", 0.1), ("strict", 0.25)):
        outputs[name] = run(
            "infer", "--model", "birdnet", "--dataset", field_dataset.name, "--sync", "--confidence-threshold",
            threshold, "--overlap", 1.5, "--no-embeddings",
        )  # fmt: skip
    strict, loose = InferenceJob.objects.all()  # newest first
    return {"loose": loose, "strict": strict, "outputs": outputs}


def windows_of(job: InferenceJob):
    return ClipPredictionTag.objects.filter(clip_prediction__job=job)


def scores_of(rows: list[dict]) -> list[float]:
    return [float(row["Confidence"]) for row in rows]


def test_a_job_exports_exactly_its_own_rows_whatever_ran_after_it(two_jobs, tmp_path):
    loose, strict = two_jobs["loose"], two_jobs["strict"]
    for job in (loose, strict):
        run("export_detections", "--job", job.uuid, "--format", "csv", "--output", tmp_path / f"{job.uuid}.csv")
    loose_rows, strict_rows = (csv_rows(tmp_path / f"{job.uuid}.csv") for job in (loose, strict))
    assert len(loose_rows) == windows_of(loose).count() > len(strict_rows) == windows_of(strict).count() > 0
    # The first job's rows at 0.1 stay its own after the 0.25 job ran on the same recordings.
    assert min(scores_of(loose_rows)) < 0.25 <= min(scores_of(strict_rows))
    run("export_detections", "--job", loose.uuid, "--format", "csv", "--output", tmp_path / "merged.csv", "--merged")
    merged = SoundEventPredictionTag.objects.filter(sound_event_prediction__job=loose)
    assert len(csv_rows(tmp_path / "merged.csv")) == merged.count() > 0


def test_infer_counts_only_the_jobs_own_rows(two_jobs):
    for name in ("loose", "strict"):
        job = two_jobs[name]
        windows = windows_of(job).count()
        detections = SoundEventPredictionTag.objects.filter(sound_event_prediction__job=job).count()
        stored = f"Stored for them by birdnet 2.4: {windows} window predictions, {detections} merged detections"
        assert windows and stored in two_jobs["outputs"][name]


def test_a_dataset_exports_its_newest_completed_job_and_says_which(two_jobs, field_dataset, user, tmp_path):
    strict = two_jobs["strict"]
    services.create_job(model_name="birdnet", dataset=field_dataset, by=user)  # newer, but not run
    output = export(strict, "csv", tmp_path / "dataset.csv")
    assert f"Exporting job {strict.uuid}, the newest completed job on dataset 'Field season': birdnet 2.4" in output
    assert "confidence threshold 0.25, sensitivity 1, overlap 1.5 s" in output
    assert f"of birdnet 2.4 (job {strict.uuid})" in output
    assert len(csv_rows(tmp_path / "dataset.csv")) == windows_of(strict).count()


def test_a_recording_exports_the_newest_completed_job_that_finished_it(two_jobs, field_recording, tmp_path):
    loose, strict = two_jobs["loose"], two_jobs["strict"]
    JobRecording.objects.filter(job=strict, recording=field_recording).update(status=JobRecording.Status.FAILED)
    output = run("export_detections", "--recording", field_recording.uuid, "--format", "raven", "--output", tmp_path)
    assert f"Exporting job {loose.uuid}, the newest completed job on recording Field_season/1min.wav" in output
    tables = list(tmp_path.rglob("*.txt"))
    assert [table.name for table in tables] == ["1min.BirdNET.selection.table.txt"]
    _, rows = read_table(tables[0])
    assert len(rows) == windows_of(loose).filter(clip_prediction__clip__recording=field_recording).count() > 0


def test_a_model_run_picks_the_newest_completed_job_of_that_model(two_jobs, field_dataset, tmp_path):
    loose, strict = two_jobs["loose"], two_jobs["strict"]
    perch = ModelRun.objects.create(name="perch", version="2.0")
    newest = InferenceJob.objects.create(
        model_run=perch, dataset=field_dataset, status=InferenceJob.Status.COMPLETED, completed_at=timezone.now()
    )
    assert f"Exporting job {newest.uuid}" in export(strict, "csv", tmp_path / "perch.csv")
    assert csv_rows(tmp_path / "perch.csv") == []  # a job without rows exports none, not another job's
    for named in ("birdnet 2.4", "birdnet", str(strict.model_run_id), str(strict.model_run.uuid)):
        output = export(strict, "csv", tmp_path / "birdnet.csv", "--model-run", named)
        assert f"Exporting job {strict.uuid}" in output
        assert len(csv_rows(tmp_path / "birdnet.csv")) == windows_of(strict).count()
    with pytest.raises(CommandError, match=r"--model-run: the job ran birdnet 2.4, not 'perch'"):
        run("export_detections", "--job", loose.uuid, "--format", "csv", "--output", tmp_path, "--model-run", "perch")
    with pytest.raises(CommandError, match=r"--model-run: no model run 'birdnet 3.0'; the model runs are: birdnet"):
        export(strict, "csv", tmp_path / "any.csv", "--model-run", "birdnet 3.0")
    ModelRun.objects.create(name="birdnet", version="2.5")
    with pytest.raises(CommandError, match=r"--model-run: no completed job of birdnet 2.5 on dataset 'Field season'"):
        export(strict, "csv", tmp_path / "any.csv", "--model-run", "birdnet 2.5")


def test_a_classifiers_scores_never_appear_in_an_export(synced, field_recording, tmp_path):
    classifier = ModelRun.objects.create(
        name="classifier", version="drum-1", kind=ModelRun.Kind.CLASSIFIER, source=synced.model_run
    )
    drumming = Tag.objects.create(key=SPECIES, value="Bonasa umbellus_Ruffed Grouse drumming")
    for clip in Clip.objects.all():
        score = ClipPrediction.objects.create(clip=clip, model_run=classifier)
        ClipPredictionTag.objects.create(clip_prediction=score, tag=drumming, score=0.99)
    # The README's command, with a classifier's scores on every clip.
    run("export_detections", "--dataset", synced.dataset.name, "--format", "raven", "--output", tmp_path / "tables")
    rows = [row for table in (tmp_path / "tables").rglob("*.txt") for row in read_table(table)[1]]
    assert len(rows) == windows_of(synced).count() and "Ruffed Grouse drumming" not in {r["Common Name"] for r in rows}
    run("export_detections", "--recording", field_recording.uuid, "--format", "csv", "--output", tmp_path / "r.csv")
    assert "Ruffed Grouse drumming" not in {row["Common name"] for row in csv_rows(tmp_path / "r.csv")}


def test_a_jobs_unfinished_recordings_get_no_table_and_are_reported(synced, field_recording, tmp_path):
    JobRecording.objects.filter(job=synced, recording=field_recording).update(status=JobRecording.Status.FAILED)
    output = run("export_detections", "--job", synced.uuid, "--format", "raven", "--output", tmp_path)
    assert [table.name for table in tmp_path.rglob("*.txt")] == ["rugr_drum.BirdNET.selection.table.txt"]
    assert "1 of the job's recordings is not done (failed, cancelled or pending): nothing exported for them" in output


@pytest.mark.parametrize(
    "target, message",
    [
        (["--dataset", "Field season"], "--dataset: no job with detections has completed on dataset 'Field season'"),
        (["--recording", "{recording}"], "--recording: no job with detections has completed on recording"),
        (["--recording", "1min"], "--recording: '1min' is not a UUID"),
        (["--job", "00000000-0000-0000-0000-000000000000"], "--job: no inference job with UUID"),
        (["--job", "last"], "--job: 'last' is not a UUID"),
    ],
)
def test_export_without_a_job_to_export_names_the_option(field_recording, user, tmp_path, target, message):
    services.create_job(model_name="birdnet", dataset=field_recording.dataset, by=user)  # pending: nothing yet
    target = [value.format(recording=field_recording.uuid) for value in target]
    with pytest.raises(CommandError) as refused:
        run("export_detections", *target, "--format", "raven", "--output", tmp_path)
    assert str(refused.value).startswith(message)
