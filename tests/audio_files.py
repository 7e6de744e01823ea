"""Real audio files with particular headers, made for tests: written by soundfile, then patched as recorders do."""

from __future__ import annotations

import struct
from pathlib import Path

import numpy as np
import soundfile as sf


def flac_with_total_samples(path: Path, samples: np.ndarray, sample_rate: int, total_samples: int) -> Path:
    """A real FLAC of `samples` whose STREAMINFO claims `total_samples` (0: unknown length, as streaming encoders
    write it; more than it holds: a broken header)."""
    sf.write(path, samples, sample_rate, format="FLAC", subtype="PCM_16")
    data = bytearray(path.read_bytes())
    # "fLaC", then the first metadata block, which is always STREAMINFO (type 0, 34 bytes): its bytes 10-17 hold
    # sample rate (20 bits), channels - 1 (3), bits per sample - 1 (5) and total samples (36 bits).
    assert data[:4] == b"fLaC" and data[4] & 0x7F == 0 and int.from_bytes(data[5:8], "big") == 34
    assert 0 <= total_samples < 1 << 36
    packed = int.from_bytes(data[18:26], "big")
    packed = (packed & ~((1 << 36) - 1)) | total_samples
    data[18:26] = packed.to_bytes(8, "big")
    path.write_bytes(bytes(data))
    return path


def wav_with_chunk(path: Path, samples: np.ndarray, sample_rate: int, chunk_id: bytes, body: bytes) -> Path:
    """A real 16-bit WAV of `samples` with one more RIFF chunk after its samples, as AudioMoth and GUANO writers
    place their metadata (the chunk padded to an even size and the RIFF size made to count it)."""
    sf.write(path, samples, sample_rate, format="WAV", subtype="PCM_16")
    data = bytearray(path.read_bytes())
    assert data[:4] == b"RIFF" and data[8:12] == b"WAVE" and len(chunk_id) == 4
    data += chunk_id + struct.pack("<I", len(body)) + body + (b"\x00" if len(body) % 2 else b"")
    data[4:8] = struct.pack("<I", len(data) - 8)
    path.write_bytes(bytes(data))
    return path


def info_comment(comment: str) -> bytes:
    """The body of a LIST/INFO chunk holding one ICMT comment, as AudioMoth writes its recording time."""
    text = comment.encode("utf-8") + b"\x00"
    text += b"\x00" * (len(text) % 2)
    return b"INFO" + b"ICMT" + struct.pack("<I", len(text)) + text


def guano(fields: dict[str, str]) -> bytes:
    """The body of a GUANO "guan" chunk: UTF-8 "Key: value" lines, GUANO|Version first."""
    lines = ["GUANO|Version: 1.0", *(f"{key}: {value}" for key, value in fields.items())]
    return "\n".join(lines).encode("utf-8")
