"""What the search page shows of an uploaded snippet: its name, length, a player and a spectrogram.

The snippet is not kept once searched, so its sound and picture travel in the page itself (data:
URLs): a mono WAV at no more than 32 kHz (the spectrogram's top is 16 kHz) and a PNG. A snippet
is at most 60 s, so the page grows by at most about 5 MB, for the one who uploaded it.
"""

from __future__ import annotations

import base64
import tempfile
from pathlib import Path

from echoroo import audio
from echoroo.media import wav_bytes
from echoroo.spectrogram import SpectrogramParams, render_png
from search.uploads import AUDIO_SUFFIXES, MIB

# The rate the snippet is played back at, at most; and the spectrogram drawn of it.
PLAYBACK_RATE_HZ = 32_000
SPECTROGRAM = SpectrogramParams(width_px=720, height_px=160)


def snippet_card(upload) -> dict:
    """The query's card for an uploaded snippet: name, size, duration, and data: URLs of its sound and spectrogram.

    A snippet that cannot be decoded (it was searched, so it could) gets no player and says why.
    """
    name = Path(getattr(upload, "name", "") or "snippet").name
    card = {"target": "snippet", "name": name, "size": _size_text(upload.size)}
    suffix = Path(name).suffix.lower()
    with tempfile.NamedTemporaryFile(prefix="echoroo-query-", suffix=suffix if suffix in AUDIO_SUFFIXES else "") as out:
        for chunk in upload.chunks():
            out.write(chunk)
        out.flush()
        try:
            info = audio.read_info(out.name)
            rate = min(info.sample_rate, PLAYBACK_RATE_HZ)
            samples = audio.load_segment(out.name, 0.0, info.duration_s, rate)
        except audio.AudioError as error:
            card["problem"] = str(error).replace(out.name, "the uploaded file")
            return card
    card.update(
        duration_s=info.duration_s,
        sample_rate=info.sample_rate,
        channels=info.channels,
        audio_url=_data_url("audio/wav", wav_bytes(samples, rate)),
        spectrogram_url=_data_url("image/png", render_png(samples, rate, SPECTROGRAM)),
        spectrogram_size=(SPECTROGRAM.width_px, SPECTROGRAM.height_px),
    )
    return card


def _data_url(mime: str, content: bytes) -> str:
    return f"data:{mime};base64,{base64.b64encode(content).decode('ascii')}"


def _size_text(size: int) -> str:
    return f"{size / MIB:.1f} MiB" if size >= MIB else f"{max(1, round(size / 1024))} KiB"
