"""The resampling backends: soxr by default, torchaudio where installed (GPU hosts)."""

from __future__ import annotations

import sys

import numpy as np
import pytest

from echoroo import audio, resamplers


def test_an_unknown_resampler_is_refused_naming_the_choices():
    with pytest.raises(ValueError, match="ECHOROO_RESAMPLER='sinc' is not a resampler: use one of soxr, torchaudio"):
        resamplers.check_backend("sinc")
    with pytest.raises(ValueError, match="unknown resampler 'sinc'"):
        resamplers.open_stream(32000, 48000, "sinc")


def test_torchaudio_without_torchaudio_installed_says_what_to_install(monkeypatch):
    monkeypatch.setitem(sys.modules, "torchaudio", None)  # import fails, as on a host without it
    with pytest.raises(ValueError, match=r"pip install -r requirements/gpu.txt\) or leave ECHOROO_RESAMPLER unset"):
        resamplers.check_backend("torchaudio")
    with pytest.raises(ValueError):
        audio.use_resampler("torchaudio")
    assert audio._resampler == "soxr"  # a refused choice changes nothing


def test_the_soxr_stream_joined_equals_soxr_on_the_whole_signal():
    import soxr

    rng = np.random.default_rng(0)
    signal = rng.standard_normal(32000 * 7).astype(np.float32)
    stream = resamplers.open_stream(32000, 48000)
    cuts = [0, 5000, 5001, 70000, 150000, len(signal)]
    joined = np.concatenate(
        [stream.resample_chunk(signal[a:b], last=b == len(signal)) for a, b in zip(cuts, cuts[1:], strict=False)]
    )
    whole = soxr.resample(signal, 32000, 48000, quality="HQ")
    assert len(joined) == len(whole)
    np.testing.assert_allclose(joined, whole, atol=1e-5)


@pytest.mark.parametrize(("in_rate", "out_rate"), [(32000, 48000), (44100, 48000), (48000, 32000), (22050, 32000)])
def test_the_torchaudio_stream_joined_equals_torchaudio_on_the_whole_signal(in_rate, out_rate):
    torch = pytest.importorskip("torch")
    torchaudio = pytest.importorskip("torchaudio")
    rng = np.random.default_rng(in_rate)
    signal = rng.standard_normal(in_rate * 3 + 17).astype(np.float32)
    stream = resamplers.TorchaudioStream(in_rate, out_rate, device="cpu")
    cuts = [0, 7, 1000, in_rate, in_rate + 1, 2 * in_rate + 5, len(signal)]
    joined = np.concatenate(
        [stream.resample_chunk(signal[a:b], last=b == len(signal)) for a, b in zip(cuts, cuts[1:], strict=False)]
    )
    whole = torchaudio.transforms.Resample(in_rate, out_rate, **resamplers.TORCHAUDIO_FILTER)(
        torch.from_numpy(signal)[None, :]
    )[0].numpy()
    assert len(joined) == len(whole)
    np.testing.assert_allclose(joined, whole, atol=1e-5)
