"""How a sound event maps to a model's fixed windows: whole windows centred on it, inside the recording."""

import numpy as np
import pytest

from embeddings.compute import cut_windows, embed_spans, event_span, mean_of_unit_vectors

WINDOW_S = 3.0


@pytest.mark.parametrize(
    ("event", "duration_s", "span"),
    [
        ((10.0, 10.6), 60.0, (8.8, 11.8)),  # a short call: the window centred on it
        ((9.0, 12.0), 60.0, (9.0, 12.0)),  # exactly a window: that window
        ((20.0, 24.5), 60.0, (19.25, 25.25)),  # longer than a window: two back-to-back windows, centred
        ((30.0, 36.0), 60.0, (30.0, 36.0)),  # two windows exactly
        ((30.0, 36.1), 60.0, (28.55, 37.55)),  # a hair over two windows: three
    ],
)
def test_an_event_gets_whole_windows_centred_on_it(event, duration_s, span):
    assert event_span(*event, duration_s, WINDOW_S) == pytest.approx(span)


@pytest.mark.parametrize(
    ("event", "duration_s", "span"),
    [
        ((0.1, 0.4), 60.0, (0.0, 3.0)),  # at the start: shifted right, never before 0
        ((59.5, 60.0), 60.0, (57.0, 60.0)),  # at the end: shifted left, never past the end
        ((9.0, 10.0), 10.0, (7.0, 10.0)),  # a job's last, clipped window: the last whole window
        ((55.0, 59.9), 60.0, (54.0, 60.0)),  # long, at the end
    ],
)
def test_the_windows_stay_inside_the_recording(event, duration_s, span):
    assert event_span(*event, duration_s, WINDOW_S) == pytest.approx(span)


@pytest.mark.parametrize(("event", "duration_s"), [((0.02, 0.1), 0.14), ((0.5, 4.0), 4.5)])
def test_a_recording_shorter_than_the_span_gives_all_of_itself(event, duration_s):
    assert event_span(*event, duration_s, WINDOW_S) == (0.0, duration_s)


def test_a_short_span_is_one_window_padded_with_zeros():
    samples = np.arange(1, 6, dtype=np.float32)
    windows = cut_windows(samples, 4)
    np.testing.assert_array_equal(windows, [[1, 2, 3, 4], [5, 0, 0, 0]])
    np.testing.assert_array_equal(cut_windows(samples[:2], 4), [[1, 2, 0, 0]])


def test_several_windows_count_the_same_whatever_their_loudness():
    vectors = np.array([[3.0, 0.0], [0.0, 0.5]], dtype=np.float32)
    np.testing.assert_allclose(mean_of_unit_vectors(vectors), [0.5, 0.5])
    np.testing.assert_array_equal(mean_of_unit_vectors(vectors[:1]), [3.0, 0.0])  # one window: as the model gave it


class CountingModel:
    """A stand-in with a model's shape (the real one is tested in test_sound_event_embeddings): sums of the samples."""

    sample_rate, window_s, embedding_dim, window_samples = 4, 1.0, 2, 4

    def predict(self, batch):
        return None, np.stack([batch.sum(axis=1), np.ones(len(batch))], axis=1)


def test_embed_spans_embeds_each_span_from_its_windows():
    spans = [np.ones(3, dtype=np.float32), np.ones(6, dtype=np.float32)]
    vectors = embed_spans(CountingModel(), spans, batch_size=1)
    np.testing.assert_allclose(vectors[0], [3, 1])  # one padded window
    expected = mean_of_unit_vectors(np.array([[4, 1], [2, 1]], dtype=np.float32))
    np.testing.assert_allclose(vectors[1], expected, rtol=1e-6)
