"""How fast annotated boxes are embedded with BirdNET through the real service, stored rows included.

Run by hand from the project root (it is not a test):

    .venv/bin/python benchmarks/sound_event_embedding.py [--events 1000] [--minutes 10]

It writes four recordings of --minutes each into a temporary AUDIO_ROOT, made by looping the real
field recordings of tests/data/ (1min.wav, soundscape.flac, great_plains_toad.wav,
rugr_drum.wav, each at its own rate), imports them into a throw-away embedded PostgreSQL server
(DATABASE_URL is ignored: the configured server is never written; both temporary folders are
removed at the end, also on failure), makes BirdNET's model run, and draws --events boxes as a
person would (sound events no model made): on a recording picked at random, a length drawn
log-uniformly from 0.3 to 6 s at a random place, a band of 1-8 kHz. Then, in this process, with
BirdNET loaded before the clock starts (a worker keeps it loaded):

- embed: `embeddings.tasks.embed_sound_events(ids)`, what a worker runs when boxes are saved: the
  events' windows read and resampled, the model, the rows stored by COPY, the run's sound event
  HNSW index built (CREATE INDEX CONCURRENTLY, since no transaction is open);
- again: the same call once more (every event is embedded: nothing is computed or added);
- model_only: `runtime.predict` alone on as many ready windows as the boxes needed, in batches of
  32, for the share of the time the model takes.

The last line of stdout is one JSON object: events, windows (the model windows the boxes
needed), embed_s, events_per_s, again_s, model_only_s, model_share, and the machine's load average.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import signal
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
SHARED = ROOT / "tests" / "data"
SOURCES = ("1min.wav", "soundscape.flac", "great_plains_toad.wav", "rugr_drum.wav")
BOX_LENGTH_S = (0.3, 6.0)

sys.path.insert(0, str(ROOT))
from benchmarks.end_to_end import log  # noqa: E402
from benchmarks.throwaway import start_throwaway_django  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=1000, help="boxes to embed (default 1000)")
    parser.add_argument("--minutes", type=float, default=10, help="length of each looped recording (default 10)")
    args = parser.parse_args()
    if args.events < 1 or args.minutes <= 0.2:
        parser.error("--events must be at least 1 and --minutes more than 0.2")
    missing = [name for name in SOURCES if not (SHARED / name).is_file()]
    if missing:
        sys.exit(f"missing in {SHARED}: {', '.join(missing)}")

    # A plain `kill` ends the run as Ctrl-C does: the temporary folders are removed.
    signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(128 + signum))
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    audio_root = start_throwaway_django(prefix="echoroo-bench-sound-events-", folders=("audio",)) / "audio"
    try:
        figures = run(args.events, args.minutes, audio_root)
    finally:
        from django.db import connections

        connections.close_all()
    print(json.dumps(figures))


def write_looped(source: Path, target: Path, seconds: float) -> None:
    import soundfile as sf

    samples, rate = sf.read(source, dtype="float32", always_2d=True)
    repeats = int(np.ceil(seconds * rate / len(samples)))
    target.parent.mkdir(parents=True, exist_ok=True)
    sf.write(target, np.tile(samples, (repeats, 1))[: round(seconds * rate)], rate, subtype="PCM_16")


def run(event_count: int, minutes: float, audio_root: Path) -> dict:
    from django.core.management import call_command

    from echoroo.importing import import_recordings
    from echoroo.models import SoundEvent
    from embeddings.compute import event_span
    from embeddings.indexes import index_state
    from embeddings.models import SoundEventEmbedding
    from embeddings.tasks import embed_sound_events
    from inference.config import InferenceConfig
    from inference.runner import load_runtime
    from inference.services import model_run_for

    load_before = os.getloadavg()
    for name in SOURCES:
        write_looped(SHARED / name, audio_root / "looped" / f"{Path(name).stem}_looped.wav", minutes * 60)
    call_command("migrate", verbosity=0)
    report = import_recordings([audio_root], dataset="Boxes")
    if len(report.imported) != len(SOURCES) or report.failures:
        raise SystemExit(f"import: {len(report.imported)} imported, failures {report.failures[:3]}")
    recordings = list(report.dataset.recordings.order_by("path"))
    model_run = model_run_for("birdnet")
    runtime = load_runtime("birdnet", InferenceConfig())

    rng = np.random.default_rng(5)
    events = []
    for _ in range(event_count):
        recording = recordings[rng.integers(len(recordings))]
        length = float(np.exp(rng.uniform(*np.log(BOX_LENGTH_S))))
        start = float(rng.uniform(0, recording.duration - length))
        events.append(
            SoundEvent(recording=recording, start_time=start, end_time=start + length, low_freq=1000, high_freq=8000)
        )
    events = SoundEvent.objects.bulk_create(events)
    ids = [event.pk for event in events]
    spans = [event_span(e.start_time, e.end_time, e.recording.duration, runtime.window_s) for e in events]
    windows = sum(max(1, math.ceil((end - start) / runtime.window_s - 1e-9)) for start, end in spans)
    log(f"{len(ids)} boxes on {len(recordings)} recordings of {minutes:g} min: {windows} model windows")

    started = time.perf_counter()
    result = embed_sound_events(ids)
    embed_s = time.perf_counter() - started
    stored = SoundEventEmbedding.objects.filter(model_run=model_run).count()
    if stored != len(ids) or index_state("sound_event", model_run.pk) != "valid":
        raise SystemExit(f"expected {len(ids)} embeddings and a valid index: {stored}, {result}")
    log(f"embedded in {embed_s:.2f} s ({len(ids) / embed_s:.1f} events/s): {result}")

    started = time.perf_counter()
    again = embed_sound_events(ids)
    again_s = time.perf_counter() - started
    log(f"again: {again_s:.2f} s: {again}")

    batch = rng.standard_normal((32, runtime.window_samples)).astype(np.float32) * 0.05
    started = time.perf_counter()
    for first in range(0, windows, 32):
        runtime.predict(batch[: min(32, windows - first)])
    model_only_s = time.perf_counter() - started
    log(f"the model alone on {windows} windows: {model_only_s:.2f} s")
    return {
        "events": len(ids),
        "windows": windows,
        "embed_s": round(embed_s, 2),
        "events_per_s": round(len(ids) / embed_s, 1),
        "again_s": round(again_s, 3),
        "model_only_s": round(model_only_s, 2),
        "model_share": round(model_only_s / embed_s, 2),
        "load_average_before": [round(value, 2) for value in load_before],
        "load_average_after": [round(value, 2) for value in os.getloadavg()],
    }


if __name__ == "__main__":
    main()
