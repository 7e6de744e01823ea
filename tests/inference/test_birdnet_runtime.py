"""The BirdNET V2.4 runtime: labels, scores, batching, embeddings, the range filter and the registry."""

from __future__ import annotations

import datetime
import subprocess
import sys

import numpy as np
import pytest

from inference.runtimes import available_runtimes, get_runtime
from inference.runtimes.base import Label
from inference.runtimes.birdnet import BirdNetRuntime, flat_sigmoid
from inference.runtimes.week import birdnet_week

ITHACA = (42.5, -76.45)
ROBIN = "Turdus migratorius_American Robin"
LYREBIRD = "Menura novaehollandiae_Superb Lyrebird"  # found only in south-eastern Australia


def windows(samples: np.ndarray, count: int) -> np.ndarray:
    return samples[: count * 144_000].reshape(count, 144_000)


def test_has_6522_labels_split_into_scientific_and_common_name(birdnet):
    assert len(birdnet.labels) == 6522
    (robin_index,) = birdnet.label_indices([ROBIN])
    robin = birdnet.labels[robin_index]
    assert robin == Label("Turdus migratorius", "American Robin")
    assert robin.name == ROBIN
    assert all(label.scientific_name and label.common_name for label in birdnet.labels)


def test_describes_birdnet_2_4(birdnet):
    assert (birdnet.sample_rate, birdnet.window_s, birdnet.window_samples, birdnet.embedding_dim) == (
        48_000,
        3.0,
        144_000,
        1024,
    )


def test_scores_are_in_0_1_and_embeddings_1024_d(birdnet, field_recording_48k):
    scores, embeddings = birdnet.predict(windows(field_recording_48k[1], 4))
    assert scores.shape == (4, 6522) and scores.dtype == np.float32
    assert ((scores >= 0) & (scores <= 1)).all()
    assert embeddings.shape == (4, 1024) and embeddings.dtype == np.float32
    assert np.abs(embeddings).sum(axis=1).min() > 0


def test_flat_sigmoid_clips_the_logit_and_scales_it_by_the_sensitivity():
    logits = np.array([0.0, 2.0, -2.0, 40.0, -40.0], np.float32)
    np.testing.assert_allclose(flat_sigmoid(logits, 1.0), 1 / (1 + np.exp(-np.array([0, 2, -2, 15, -15]))), rtol=1e-6)
    np.testing.assert_allclose(flat_sigmoid(logits, 1.5)[1], 1 / (1 + np.exp(-3.0)), rtol=1e-6)


def test_sensitivity_multiplies_the_logit(birdnet, runtime_cache_dir, field_recording_48k):
    batch = windows(field_recording_48k[1], 3)
    scores = birdnet.predict(batch)[0].astype(np.float64)
    sharper = BirdNetRuntime(sensitivity=1.5, cache_dir=runtime_cache_dir).predict(batch)[0]
    usable = (scores > 1e-4) & (scores < 1 - 1e-4)  # where the logit can be read back from the score
    logits = np.log(scores[usable] / (1 - scores[usable]))
    np.testing.assert_allclose(sharper[usable], 1 / (1 + np.exp(-1.5 * logits)), atol=2e-5)


@pytest.mark.parametrize("sensitivity", [0.49, 1.51, -1])
def test_sensitivity_outside_0_5_to_1_5_is_refused(sensitivity):
    with pytest.raises(ValueError, match="sensitivity must be between 0.5 and 1.5"):
        BirdNetRuntime(sensitivity=sensitivity)


def test_a_batch_of_8_equals_8_batches_of_1(birdnet, field_recording_48k):
    batch = windows(field_recording_48k[1], 8)
    scores, embeddings = birdnet.predict(batch)
    one_by_one = [birdnet.predict(window[None]) for window in batch]
    np.testing.assert_allclose(scores, np.concatenate([s for s, _ in one_by_one]), atol=1e-5)
    np.testing.assert_allclose(embeddings, np.concatenate([e for _, e in one_by_one]), atol=1e-5)


def test_changing_batch_sizes_back_and_forth_keeps_results(birdnet, field_recording_48k):
    batch = windows(field_recording_48k[1], 5)
    first = birdnet.predict(batch)[0]
    birdnet.predict(batch[:2])
    np.testing.assert_array_equal(birdnet.predict(batch)[0], first)


def test_both_embedding_methods_agree(birdnet, runtime_cache_dir, field_recording_48k):
    batch = windows(field_recording_48k[1], 3)
    preserving = BirdNetRuntime(embedding_method="preserve", cache_dir=runtime_cache_dir)
    for ours, theirs in zip(birdnet.predict(batch), preserving.predict(batch), strict=True):
        np.testing.assert_allclose(ours, theirs, atol=1e-6)


def test_the_model_copy_is_made_once_and_reused(birdnet, runtime_cache_dir):
    (copy,) = runtime_cache_dir.glob("*.folded.embedding-output.*.tflite")
    made = copy.stat().st_mtime_ns
    BirdNetRuntime(cache_dir=runtime_cache_dir)
    assert copy.stat().st_mtime_ns == made
    assert not list(runtime_cache_dir.glob("*.part"))


def test_an_unwritable_cache_keeps_the_copy_in_memory(tmp_path, birdnet, field_recording_48k):
    (tmp_path / "a-file").write_text("not a folder")
    runtime = BirdNetRuntime(cache_dir=tmp_path / "a-file" / "cache")
    batch = windows(field_recording_48k[1], 1)
    np.testing.assert_array_equal(runtime.predict(batch)[1], birdnet.predict(batch)[1])


def test_windows_of_the_wrong_length_are_refused(birdnet):
    with pytest.raises(ValueError, match="144000 samples"):
        birdnet.predict(np.zeros((2, 160_000), np.float32))


def test_an_empty_batch_gives_empty_outputs(birdnet):
    scores, embeddings = birdnet.predict(np.zeros((0, 144_000), np.float32))
    assert scores.shape == (0, 6522) and embeddings.shape == (0, 1024)


def test_species_filter_keeps_local_birds_and_drops_far_away_ones(birdnet):
    names = {birdnet.labels[index].name for index in birdnet.species_filter(*ITHACA, week=20)}
    assert ROBIN in names
    assert LYREBIRD not in names
    assert 50 < len(names) < 1000


def test_species_filter_at_the_other_end_of_the_world(birdnet):
    names = {birdnet.labels[index].name for index in birdnet.species_filter(-33.9, 151.2, week=20)}
    assert LYREBIRD in names and ROBIN not in names


def test_week_minus_one_is_the_whole_year(birdnet):
    all_year = birdnet.species_filter(*ITHACA, week=-1)
    assert birdnet.label_indices([ROBIN]) <= all_year
    assert all_year != birdnet.species_filter(*ITHACA, week=1)


def test_a_higher_threshold_keeps_fewer_species(birdnet):
    assert birdnet.species_filter(*ITHACA, 20, threshold=0.3) < birdnet.species_filter(*ITHACA, 20, threshold=0.03)


@pytest.mark.parametrize(("lat", "lon", "week"), [(42.5, -76.45, 0), (42.5, -76.45, 49), (91, 0, 20), (0, 181, 20)])
def test_species_filter_refuses_impossible_places_and_weeks(birdnet, lat, lon, week):
    with pytest.raises(ValueError, match="week|latitude"):
        birdnet.species_filter(lat, lon, week)


def test_a_custom_species_list_takes_full_labels_or_scientific_names(birdnet):
    indices = birdnet.label_indices([ROBIN, "Cyanocitta cristata", "", "  Parus major  "])
    assert sorted(birdnet.labels[index].common_name for index in indices) == ["American Robin", "Blue Jay", "Great Tit"]


def test_a_custom_species_list_with_unknown_names_is_refused(birdnet):
    with pytest.raises(ValueError, match="not in birdnet's labels: 'Turdus migratorius_Robin'"):
        birdnet.label_indices(["Turdus migratorius_Robin"])


@pytest.mark.parametrize(
    ("date", "week"),
    [
        ((2024, 1, 1), 1),
        ((2024, 1, 7), 1),
        ((2024, 1, 8), 2),
        ((2024, 1, 21), 3),
        ((2024, 1, 22), 4),
        ((2024, 1, 31), 4),
        ((2024, 2, 1), 5),
        ((2023, 3, 1), 9),  # birdnetlib says 8: it scales the day of the year to 48
        ((2024, 5, 15), 19),
        ((2024, 12, 31), 48),
    ],
)
def test_birdnet_week_counts_four_weeks_a_month(date, week):
    assert birdnet_week(datetime.date(*date)) == week


def test_the_registry_loads_each_runtime_once(runtime_cache_dir):
    assert available_runtimes() == ["birdnet", "perch"]
    first = get_runtime("birdnet", cache_dir=runtime_cache_dir)
    assert get_runtime("birdnet", cache_dir=runtime_cache_dir) is first
    assert get_runtime("birdnet", cache_dir=runtime_cache_dir, sensitivity=1.2) is not first


def test_the_registry_refuses_unknown_runtimes():
    with pytest.raises(ValueError, match="unknown model runtime 'birdnet3'; available: birdnet, perch"):
        get_runtime("birdnet3")


def test_the_runtime_layer_imports_neither_django_nor_tensorflow_until_asked():
    code = (
        "import sys, inference.runtimes, inference.runtimes.birdnet, inference.runtimes.perch;"
        "print(sorted(m for m in ('django', 'tensorflow') if m in sys.modules))"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "[]"


# Parity with birdnetlib 0.18.1 (the reference; test-only), on the same 48 kHz samples.


def birdnetlib_windows(samples: np.ndarray) -> np.ndarray:
    """3 s windows as birdnetlib cuts them: a last window of at least 1.5 s is zero-padded, a shorter one dropped."""
    starts = [start for start in range(0, len(samples), 144_000) if len(samples) - start >= 72_000]
    return np.stack(
        [np.pad(samples[start : start + 144_000], (0, max(0, start + 144_000 - len(samples)))) for start in starts]
    )


def our_detections(runtime, samples, min_conf: float, allowed: frozenset[int] | None = None) -> dict:
    scores, _ = runtime.predict(birdnetlib_windows(samples))
    return {
        (position * 3.0, position * 3.0 + 3.0, runtime.labels[index].name): float(row[index])
        for position, row in enumerate(scores)
        for index in np.flatnonzero(row > min_conf)  # birdnetlib keeps confidence > min_conf
        if allowed is None or index in allowed
    }


def birdnetlib_detections(analyzer, path, **settings) -> dict:
    from birdnetlib import Recording

    recording = Recording(analyzer, str(path), **settings)
    recording.analyze()
    return {
        (found["start_time"], found["end_time"], f"{found['scientific_name']}_{found['common_name']}"): found[
            "confidence"
        ]
        for found in recording.detections
    }


def assert_same_detections(ours: dict, theirs: dict) -> None:
    assert theirs, "the comparison means nothing without detections"
    assert sorted(ours) == sorted(theirs)
    for key, confidence in ours.items():
        assert confidence == pytest.approx(theirs[key], abs=1e-4), key


@pytest.mark.parametrize(
    ("recording", "min_conf"),
    [("field_recording_48k", 0.1), ("field_recording_48k", 0.25), ("short_recording_48k", 0.1)],
)
def test_detections_equal_birdnetlibs(request, birdnet, birdnetlib_analyzer, recording, min_conf):
    path, samples = request.getfixturevalue(recording)
    theirs = birdnetlib_detections(birdnetlib_analyzer(), path, min_conf=min_conf)
    assert_same_detections(our_detections(birdnet, samples, min_conf), theirs)


def test_detections_with_a_place_and_week_equal_birdnetlibs(birdnet, birdnetlib_analyzer, field_recording_48k):
    path, samples = field_recording_48k
    theirs = birdnetlib_detections(birdnetlib_analyzer(), path, min_conf=0.1, lat=ITHACA[0], lon=ITHACA[1], week_48=20)
    allowed = birdnet.species_filter(*ITHACA, week=20)
    assert_same_detections(our_detections(birdnet, samples, 0.1, allowed), theirs)


def test_detections_with_a_sensitivity_equal_birdnetlibs(runtime_cache_dir, birdnetlib_analyzer, field_recording_48k):
    path, samples = field_recording_48k
    ours = BirdNetRuntime(sensitivity=1.25, cache_dir=runtime_cache_dir)
    # birdnetlib, like BirdNET-Analyzer, takes 2 - multiplier: its sensitivity 0.75 is a logit multiplier of 1.25.
    theirs = birdnetlib_detections(birdnetlib_analyzer(), path, min_conf=0.1, sensitivity=0.75)
    assert_same_detections(our_detections(ours, samples, 0.1), theirs)


def test_detections_with_a_custom_species_list_equal_birdnetlibs(birdnet, birdnetlib_analyzer, field_recording_48k):
    path, samples = field_recording_48k
    detected = sorted({name for _, _, name in our_detections(birdnet, samples, 0.1)})
    species = [*detected[::2], ROBIN]
    theirs = birdnetlib_detections(birdnetlib_analyzer(custom_species_list=species), path, min_conf=0.1)
    assert_same_detections(our_detections(birdnet, samples, 0.1, birdnet.label_indices(species)), theirs)


@pytest.mark.parametrize("week", [20, -1])
def test_species_filter_equals_birdnetlibs(birdnet, birdnetlib_analyzer, week):
    from birdnetlib.species import SpeciesList

    theirs = SpeciesList().return_list_for_analyzer(lat=ITHACA[0], lon=ITHACA[1], week_48=week, threshold=0.03)
    assert {birdnet.labels[index].name for index in birdnet.species_filter(*ITHACA, week=week)} == set(theirs)


@pytest.mark.parametrize("recording", ["field_recording_48k", "short_recording_48k"])
def test_embeddings_equal_birdnetlibs(request, birdnet, birdnetlib_analyzer, recording):
    from birdnetlib import Recording

    path, samples = request.getfixturevalue(recording)
    reference = Recording(birdnetlib_analyzer(), str(path))
    reference.extract_embeddings()
    theirs = np.array([window["embeddings"] for window in reference.embeddings], np.float32)
    _, ours = birdnet.predict(birdnetlib_windows(samples))
    assert ours.shape == theirs.shape
    np.testing.assert_allclose(ours, theirs, atol=1e-4)
