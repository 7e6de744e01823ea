"""Today's predictions become the model's raw output, and each recording's predictions the detections of
the job that wrote them last (see README, "A job's results are its own").

Before, predictions were keyed on (clip, model run): the last job on a recording replaced what earlier
jobs found. So:
- every model-run prediction (not a classifier's) becomes raw output: its score turned back into the
  logit with the sensitivity of the job that wrote it;
- the rows go to that job (the newest job of the model run that finished the recording); jobs whose
  results were already replaced before this migration get none back: they were lost then;
- the recording counts as stored (a RecordingOutput, down to that job's threshold) only where that
  job had no species filter or custom list: otherwise labels outside its list were never kept, and
  later jobs run the model again;
- predictions no job wrote are kept as raw output only.
"""

import json
import math

from django.db import migrations

from echoroo.audio import count_windows
from echoroo.cascades import write_rules_into_database

WRITERS = """
    SELECT DISTINCT ON (jr.recording_id, j.model_run_id) jr.recording_id, j.model_run_id, j.id, j.config
    FROM inference_jobrecording jr
    JOIN inference_inferencejob j ON j.id = jr.job_id
    JOIN echoroo_modelrun r ON r.id = j.model_run_id AND r.kind = 'model'
    WHERE jr.status = 'done'
    ORDER BY jr.recording_id, j.model_run_id, jr.finished_at DESC NULLS LAST, jr.id DESC
"""


def forward(apps, schema_editor) -> None:
    Recording = apps.get_model("echoroo", "Recording")
    ModelRun = apps.get_model("echoroo", "ModelRun")
    with schema_editor.connection.cursor() as cursor:
        cursor.execute(
            "SELECT EXISTS (SELECT 1 FROM echoroo_clipprediction) OR EXISTS (SELECT 1 FROM echoroo_soundeventprediction)"
        )
        if not cursor.fetchone()[0]:
            return
        cursor.execute(f"CREATE TEMP TABLE writer ON COMMIT DROP AS {WRITERS}")
        cursor.execute("ALTER TABLE writer RENAME COLUMN id TO job_id")
        cursor.execute(
            "ALTER TABLE writer ADD COLUMN sensitivity float8, ADD COLUMN threshold float8, ADD COLUMN overlap float8,"
            " ADD COLUMN restricted boolean, ADD COLUMN embeddings boolean"
        )
        cursor.execute("SELECT recording_id, model_run_id, config FROM writer")
        for recording_id, model_run_id, config in cursor.fetchall():
            config = json.loads(config) if isinstance(config, str) else config  # Django's cursor leaves jsonb as text
            recording = Recording.objects.select_related("site", "dataset").get(pk=recording_id)
            places = (config, recording, recording.site, recording.dataset)
            located = any(
                place is not None and _get(place, "latitude") is not None and _get(place, "longitude") is not None
                for place in places
            )
            restricted = bool(config.get("custom_species_list")) or (
                config.get("use_metadata_filter", True) and located
            )
            cursor.execute(
                "UPDATE writer SET sensitivity = %s, threshold = %s, overlap = %s, restricted = %s, embeddings = %s"
                " WHERE recording_id = %s AND model_run_id = %s",
                [
                    float(config.get("sensitivity", 1.0)),
                    float(config.get("confidence_threshold", 0.5)),
                    float(config.get("overlap", 0.0)),
                    restricted,
                    bool(config.get("store_embeddings", True)),
                    recording_id,
                    model_run_id,
                ],
            )
        # Raw output: each model-run prediction's tags with their logits (the writer's sensitivity undone).
        cursor.execute(
            "INSERT INTO echoroo_clipoutput (clip_id, model_run_id, tags, logits)"
            " SELECT p.clip_id, p.model_run_id, array_agg(t.tag_id ORDER BY t.score DESC, t.tag_id),"
            "  array_agg((ln(q.s / (1 - q.s)) / COALESCE(w.sensitivity, 1.0))::real ORDER BY t.score DESC, t.tag_id)"
            " FROM echoroo_clipprediction p"
            " JOIN echoroo_modelrun r ON r.id = p.model_run_id AND r.kind = 'model'"
            " JOIN echoroo_clip c ON c.id = p.clip_id"
            " JOIN echoroo_clippredictiontag t ON t.clip_prediction_id = p.id"
            " CROSS JOIN LATERAL (SELECT LEAST(GREATEST(t.score, 1e-7), 1 - 1e-7) AS s) q"
            " LEFT JOIN writer w ON w.recording_id = c.recording_id AND w.model_run_id = p.model_run_id"
            " WHERE p.job_id IS NULL AND t.score > 0"
            " GROUP BY p.clip_id, p.model_run_id"
            " ON CONFLICT (clip_id, model_run_id) DO NOTHING"
        )
        # The detections are the writer's; those no job wrote stay raw output only.
        cursor.execute(
            "UPDATE echoroo_clipprediction p SET job_id = w.job_id FROM echoroo_clip c, writer w"
            " WHERE p.job_id IS NULL AND c.id = p.clip_id AND w.recording_id = c.recording_id"
            " AND w.model_run_id = p.model_run_id"
        )
        cursor.execute(
            "DELETE FROM echoroo_clipprediction p USING echoroo_modelrun r"
            " WHERE p.job_id IS NULL AND r.id = p.model_run_id AND r.kind = 'model'"
        )
        cursor.execute(
            "UPDATE echoroo_soundeventprediction p SET job_id = w.job_id FROM echoroo_soundevent e, writer w"
            " WHERE p.job_id IS NULL AND e.id = p.sound_event_id AND w.recording_id = e.recording_id"
            " AND w.model_run_id = p.model_run_id"
        )
        cursor.execute(
            "DELETE FROM echoroo_soundevent e USING echoroo_soundeventprediction p"
            " WHERE p.sound_event_id = e.id AND p.job_id IS NULL"
        )
        # Stored recordings: where the writer kept every label down to its threshold.
        cursor.execute(
            "SELECT recording_id, model_run_id, sensitivity, threshold, overlap, embeddings FROM writer"
            " WHERE NOT restricted"
        )
        for recording_id, model_run_id, sensitivity, threshold, overlap, embeddings in cursor.fetchall():
            recording = Recording.objects.get(pk=recording_id)
            run = ModelRun.objects.get(pk=model_run_id)
            if not run.segment_duration or not run.sample_rate:
                continue
            windows = count_windows(recording.duration, run.segment_duration, overlap, sample_rate=run.sample_rate)
            floor = _logit(threshold) / sensitivity
            cursor.execute(
                "INSERT INTO echoroo_recordingoutput"
                " (recording_id, model_run_id, overlap, windows, outputs, floor_logit, embeddings, created_at)"
                " SELECT %(recording)s, %(run)s, %(overlap)s, %(windows)s,"
                "  (SELECT count(*) FROM echoroo_clipoutput o JOIN echoroo_clip c ON c.id = o.clip_id"
                "   WHERE c.recording_id = %(recording)s AND o.model_run_id = %(run)s),"
                "  %(floor)s,"
                "  %(embeddings)s AND %(windows)s <= (SELECT count(*) FROM embeddings_clipembedding m"
                "   JOIN echoroo_clip c ON c.id = m.clip_id WHERE c.recording_id = %(recording)s"
                "   AND m.model_run_id = %(run)s),"
                "  now()"
                " ON CONFLICT DO NOTHING",
                {
                    "recording": recording_id,
                    "run": model_run_id,
                    "overlap": overlap,
                    "windows": windows,
                    "floor": floor,
                    "embeddings": embeddings,
                },
            )


def _get(place, name):
    return place.get(name) if isinstance(place, dict) else getattr(place, name)


def _logit(probability: float) -> float:
    if probability <= 0:
        return -math.inf
    if probability >= 1:
        return math.inf
    return math.log(probability / (1 - probability))


class Migration(migrations.Migration):
    dependencies = [("echoroo", "0005_job_detections_and_raw_output"), ("embeddings", "0002_drop_redundant_fk_indexes")]

    operations = [
        # The new foreign keys (a job's detections, raw output) cascade in PostgreSQL too; before the
        # rows change, as PostgreSQL alters no table with pending foreign-key checks.
        migrations.RunPython(write_rules_into_database, migrations.RunPython.noop),
        migrations.RunPython(forward, migrations.RunPython.noop),
    ]
