"""What the pages load besides HTML: a clip's audio as WAV (with HTTP Range) and spectrogram PNGs, cached on disk."""

from __future__ import annotations

import math
import os
import re
import tempfile
from functools import wraps
from pathlib import Path

import numpy as np
from django.conf import settings
from django.http import FileResponse, Http404, HttpRequest, HttpResponse, HttpResponseBadRequest
from django.shortcuts import get_object_or_404
from django.views.decorators.http import require_GET

from echoroo.audio import END_TOLERANCE_S, AudioError, load_segment
from echoroo.models import Clip, Recording
from echoroo.spectrogram import SpectrogramParams, fft_size_for_band, render_png

# Longest range one spectrogram image or one WAV may cover: bounds the memory and time of a request.
MAX_SPECTROGRAM_S = 120.0
MAX_CLIP_AUDIO_S = 600.0
# A recording range is drawn at this many pixels a second (60 s: 1,200 px) unless ?width= says how wide;
# a clip at a fixed size.
RECORDING_PX_PER_S = 20
MAX_WIDTH_PX = 2400
CLIP_PARAMS = SpectrogramParams(width_px=240, height_px=128)
# ?context= plays this many seconds at most before and after a clip; the pages offer PLAY_CONTEXT_S.
MAX_CONTEXT_S = 5.0
PLAY_CONTEXT_S = 1.0
# Cached files are named after the audio's content, so they never go stale: browsers may keep them.
CACHE_CONTROL = "private, max-age=86400"


def login_required_401(view):
    """For what pages fetch (audio, images, JSON): 401 for anonymous users, not a redirect to an HTML form."""

    @wraps(view)
    def wrapper(request: HttpRequest, *args, **kwargs):
        if not request.user.is_authenticated:
            return HttpResponse("Log in first.", status=401, content_type="text/plain")
        return view(request, *args, **kwargs)

    return wrapper


def audio_path(recording: Recording) -> Path:
    """The recording's file, only if it resolves to somewhere under AUDIO_ROOT (no ../ or symlinks out)."""
    root = Path(settings.AUDIO_ROOT).resolve()
    path = (root / recording.path).resolve()
    if not path.is_relative_to(root):
        raise Http404("The recording's file is outside AUDIO_ROOT.")
    if not path.is_file():
        raise Http404("The recording's file is missing: check that AUDIO_ROOT is mounted.")
    return path


def check_range(recording: Recording, start_s: float, end_s: float, max_s: float) -> str | None:
    """Why [start_s, end_s) cannot be served from this recording, or None when it can."""
    if not (math.isfinite(start_s) and math.isfinite(end_s)):
        return "start and end must be numbers of seconds"
    if not 0 <= start_s < end_s <= recording.duration + END_TOLERANCE_S:
        return f"the range {start_s:g}-{end_s:g} s lies outside the recording (0-{recording.duration:g} s)"
    if end_s - start_s > max_s + END_TOLERANCE_S:
        return f"the range is {end_s - start_s:g} s long; ask for at most {max_s:g} s"
    return None


def wav_bytes(samples: np.ndarray, sample_rate: int) -> bytes:
    """Mono float32 samples as a 16-bit PCM WAV file."""
    pcm = (np.clip(samples, -1.0, 1.0) * 32767).round().astype("<i2").tobytes()
    header = b"".join(
        [
            b"RIFF",
            (36 + len(pcm)).to_bytes(4, "little"),
            b"WAVEfmt ",
            (16).to_bytes(4, "little"),
            (1).to_bytes(2, "little"),  # PCM
            (1).to_bytes(2, "little"),  # mono
            sample_rate.to_bytes(4, "little"),
            (sample_rate * 2).to_bytes(4, "little"),  # bytes a second
            (2).to_bytes(2, "little"),  # bytes a frame
            (16).to_bytes(2, "little"),  # bits a sample
            b"data",
            len(pcm).to_bytes(4, "little"),
        ]
    )
    return header + pcm


RANGE_RE = re.compile(r"^bytes=(\d*)-(\d*)$")


def byte_range(header: str, length: int) -> tuple[int, int] | None | bool:
    """The (first, last) bytes a Range header asks for; None to send everything; False when unsatisfiable.

    Only one range is served: several ranges, other units and malformed values are ignored, as
    RFC 9110 allows, and the whole body is sent.
    """
    match = RANGE_RE.match(header.strip())
    if not match or match.groups() == ("", ""):
        return None
    first, last = match.groups()
    if first == "":  # the last N bytes
        suffix = int(last)
        if suffix == 0:
            return False
        return max(0, length - suffix), length - 1
    first = int(first)
    if last != "" and int(last) < first:
        return None
    if first >= length:
        return False
    return first, length - 1 if last == "" else min(int(last), length - 1)


def number_param(request: HttpRequest, name: str, default: float | None) -> float | None:
    """A number (seconds, hertz, pixels) from the query string; ValueError naming the parameter if it is not one."""
    text = request.GET.get(name)
    if text is None or text == "":
        return default
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not math.isfinite(value):
        raise ValueError(f"{name} must be a number, not {text[:20]!r}")
    return value


@require_GET
@login_required_401
def clip_audio(request: HttpRequest, uuid) -> HttpResponse:
    """A clip's audio as 16-bit PCM WAV at the recording's own rate; answers Range requests with 206.

    ?context=1 adds a second of the recording before and after the clip (as much as there is at its ends).
    """
    clip = get_object_or_404(Clip.objects.select_related("recording"), uuid=uuid)
    recording = clip.recording
    try:
        context_s = number_param(request, "context", 0.0)
    except ValueError as error:
        return HttpResponseBadRequest(f"{error}.", content_type="text/plain")
    if not 0 <= context_s <= MAX_CONTEXT_S:
        return HttpResponseBadRequest(
            f"context is the seconds played before and after the clip: from 0 to {MAX_CONTEXT_S:g}, not {context_s:g}.",
            content_type="text/plain",
        )
    problem = check_range(recording, clip.start_time, clip.end_time, MAX_CLIP_AUDIO_S)
    if problem:
        return HttpResponseBadRequest(f"This clip cannot be played: {problem}.", content_type="text/plain")
    start_s = max(clip.start_time - context_s, 0.0)
    end_s = min(clip.end_time + context_s, recording.duration)
    path = audio_path(recording)
    try:
        samples = load_segment(path, start_s, end_s)
    except AudioError as error:
        raise Http404(str(error)) from error
    body = wav_bytes(samples, recording.samplerate)
    wanted = byte_range(request.headers.get("Range", ""), len(body))
    if wanted is False:
        response = HttpResponse(status=416)
        response["Content-Range"] = f"bytes */{len(body)}"
    elif wanted is None:
        response = HttpResponse(body, content_type="audio/wav")
    else:
        first, last = wanted
        response = HttpResponse(body[first : last + 1], status=206, content_type="audio/wav")
        response["Content-Range"] = f"bytes {first}-{last}/{len(body)}"
    response["Accept-Ranges"] = "bytes"
    response["Cache-Control"] = CACHE_CONTROL
    return response


def spectrogram_file(recording: Recording, start_s: float, end_s: float, params: SpectrogramParams) -> Path:
    """The PNG of a recording's range, made once and kept, named by the file's sha256, the range and params."""
    name = f"{recording.sha256}_{round(start_s * 1000)}_{round(end_s * 1000)}_{params.key}.png"
    cached = Path(settings.SPECTROGRAM_CACHE_DIR) / recording.sha256[:2] / name
    if cached.is_file():
        return cached
    try:
        samples = load_segment(audio_path(recording), start_s, end_s)
    except AudioError as error:
        raise Http404(str(error)) from error
    png = render_png(samples, recording.samplerate, params)
    cached.parent.mkdir(parents=True, exist_ok=True)
    # Written aside and renamed: a request running beside this one never reads half a file.
    with tempfile.NamedTemporaryFile(dir=cached.parent, suffix=".part", delete=False) as part:
        part.write(png)
    os.replace(part.name, cached)
    return cached


def png_response(path: Path) -> FileResponse:
    response = FileResponse(path.open("rb"), content_type="image/png")
    response["Cache-Control"] = CACHE_CONTROL
    return response


def default_top_hz(recording: Recording) -> float:
    """The top of a recording's spectrogram unless asked otherwise: 16 kHz, or its Nyquist frequency if lower."""
    return min(recording.samplerate / 2, SpectrogramParams.max_freq_hz)


def band_problem(recording: Recording, min_freq_hz: float, max_freq_hz: float) -> str | None:
    """Why [min_freq, max_freq] Hz cannot be drawn from this recording, or None when it can."""
    nyquist = recording.samplerate / 2
    if min_freq_hz < 0:
        return f"min_freq is {min_freq_hz:g} Hz; it starts at 0"
    if max_freq_hz > nyquist:
        return f"max_freq is {max_freq_hz:g} Hz, above this recording's highest frequency ({nyquist:g} Hz)"
    if min_freq_hz >= max_freq_hz:
        return f"min_freq ({min_freq_hz:g} Hz) must be below max_freq ({max_freq_hz:g} Hz)"
    return None


@require_GET
@login_required_401
def recording_spectrogram(request: HttpRequest, uuid) -> HttpResponse:
    """The spectrogram of ?start=&end= seconds of a recording (default: its first minute), at most 120 s.

    ?width= is the image's width in pixels (default 20 a second); ?min_freq= and ?max_freq= the band drawn in Hz
    (default 0 to 16 kHz, or to the recording's highest frequency if lower). The image is 256 pixels high.
    """
    recording = get_object_or_404(Recording, uuid=uuid)
    try:
        start_s = number_param(request, "start", 0.0)
        end_s = number_param(request, "end", min(60.0, recording.duration))
        width = number_param(request, "width", None)
        min_freq_hz = number_param(request, "min_freq", 0.0)
        max_freq_hz = number_param(request, "max_freq", default_top_hz(recording))
    except ValueError as error:
        return HttpResponseBadRequest(f"No spectrogram: {error}.", content_type="text/plain")
    problem = check_range(recording, start_s, end_s, MAX_SPECTROGRAM_S) or band_problem(
        recording, min_freq_hz, max_freq_hz
    )
    if not problem and width is not None and not (width == int(width) and 1 <= width <= MAX_WIDTH_PX):
        problem = f"width is the image's width in pixels: a whole number from 1 to {MAX_WIDTH_PX}, not {width:g}"
    if problem:
        return HttpResponseBadRequest(f"No spectrogram: {problem}.", content_type="text/plain")
    end_s = min(end_s, recording.duration)
    width_px = int(width) if width is not None else max(1, round((end_s - start_s) * RECORDING_PX_PER_S))
    params = SpectrogramParams(
        width_px=width_px,
        min_freq_hz=min_freq_hz,
        max_freq_hz=max_freq_hz,
        n_fft=fft_size_for_band(recording.samplerate, min_freq_hz, max_freq_hz, SpectrogramParams.height_px),
    )
    return png_response(spectrogram_file(recording, start_s, end_s, params))


@require_GET
@login_required_401
def clip_spectrogram(request: HttpRequest, uuid) -> HttpResponse:
    """A clip's spectrogram, a thumbnail of fixed size."""
    clip = get_object_or_404(Clip.objects.select_related("recording"), uuid=uuid)
    recording = clip.recording
    problem = check_range(recording, clip.start_time, clip.end_time, MAX_SPECTROGRAM_S)
    if problem:
        return HttpResponseBadRequest(f"No spectrogram: {problem}.", content_type="text/plain")
    end_s = min(clip.end_time, recording.duration)
    return png_response(spectrogram_file(recording, clip.start_time, end_s, CLIP_PARAMS))
