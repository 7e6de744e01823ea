"""What recorders write about a recording inside its WAV file: AudioMoth's header comment and GUANO.

- AudioMoth firmware writes a RIFF INFO comment (ICMT) that starts "Recorded at 19:20:00 02/03/2021 (UTC)
  by AudioMoth ...": the time and the day/month/year in the zone it names ("(UTC)", "(UTC-5)",
  "(UTC+5:30)"). The oldest firmware named no zone; its clock kept UTC.
- GUANO (guano-md.org: bat detectors, and the recorders and programs that adopted it) is a RIFF chunk
  with the id "guan" holding UTF-8 "Key: value" lines. Its Timestamp is ISO 8601, with an offset or
  without one (then the recorder's local time); its Loc Position is "latitude longitude" (WGS84).

Only the start time and the place are read. Where both are present, GUANO's Timestamp wins: it is the
structured field, with fractions of a second.
"""

from __future__ import annotations

import io
import re
import struct
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, timezone
from typing import BinaryIO

# Metadata chunks are small; a larger "LIST" or "guan" is not read (it would be a broken header).
MAX_METADATA_CHUNK_BYTES = 1 << 20
# Chunks walked at most before giving up on a file (a broken header could list thousands).
MAX_CHUNKS = 1000

_AUDIOMOTH = re.compile(
    r"Recorded at (?P<time>\d{2}:\d{2}:\d{2}) (?P<date>\d{2}/\d{2}/\d{4})"
    r"(?P<zone> \(UTC(?:(?P<sign>[+-])(?P<hours>\d{1,2})(?::(?P<minutes>\d{2}))?)?\))?"
)


@dataclass(frozen=True)
class WavMetadata:
    """A recording's start and place as its file states them; `problems` names what was there but unreadable."""

    recorded_at: datetime | None = None  # aware where the file names its zone, else the recorder's local time
    latitude: float | None = None
    longitude: float | None = None
    problems: tuple[str, ...] = ()


def read_wav_metadata(file: BinaryIO) -> WavMetadata:
    """The AudioMoth comment and GUANO fields of an open RIFF/WAVE file; nothing for other files.

    The file is read by seeking from chunk to chunk (the samples are skipped), and left at any position.
    """
    comment, guano = _metadata_chunks(file)
    problems: list[str] = []
    recorded_at = latitude = longitude = None
    if guano is not None:
        fields = parse_guano(guano)
        recorded_at = _guano_timestamp(fields.get("Timestamp"), problems)
        latitude, longitude = _guano_position(fields.get("Loc Position"), problems)
    if recorded_at is None and comment is not None:
        recorded_at = audiomoth_recorded_at(comment, problems)
    return WavMetadata(recorded_at, latitude, longitude, tuple(problems))


def audiomoth_recorded_at(comment: str, problems: list[str] | None = None) -> datetime | None:
    """The start time in an AudioMoth header comment (aware), or None when the comment is not AudioMoth's."""
    match = _AUDIOMOTH.match(comment.strip())
    if match is None:
        return None
    try:
        local = datetime.strptime(f"{match['date']} {match['time']}", "%d/%m/%Y %H:%M:%S")
    except ValueError:
        _note(problems, f"the AudioMoth comment's time {match['time']} {match['date']} is not a real date and time")
        return None
    offset = timedelta(hours=int(match["hours"] or 0), minutes=int(match["minutes"] or 0))
    if offset >= timedelta(hours=24):
        _note(problems, f"the AudioMoth comment's time zone {match['zone'].strip()} is not a real UTC offset")
        return None
    zone = UTC if not offset else timezone(-offset if match["sign"] == "-" else offset)
    return local.replace(tzinfo=zone)


def parse_guano(body: bytes) -> dict[str, str]:
    """GUANO's fields: one "Key: value" a line, split at the first colon, whitespace (NULs too) trimmed."""
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError:  # the spec requires UTF-8; some writers used Latin-1
        text = body.decode("latin-1")
    fields = {}
    for line in text.split("\n"):
        key, colon, value = line.partition(":")
        key, value = key.strip(), value.strip(" \t\r\n\x00")
        if colon and key and value:
            fields[key] = value
    return fields


def _guano_timestamp(value: str | None, problems: list[str]) -> datetime | None:
    if value is None:
        return None
    try:
        if len(value) <= len("2021-03-02"):  # a date alone is no start time
            raise ValueError
        return datetime.fromisoformat(value)
    except ValueError:
        problems.append(f"GUANO Timestamp {value!r} is not an ISO 8601 date and time")
        return None


def _guano_position(value: str | None, problems: list[str]) -> tuple[float | None, float | None]:
    if value is None:
        return None, None
    parts = value.replace(",", " ").split()
    try:
        latitude, longitude = (float(part) for part in parts)
    except ValueError:
        problems.append(f"GUANO Loc Position {value!r} is not 'latitude longitude'")
        return None, None
    if not (-90 <= latitude <= 90 and -180 <= longitude <= 180):  # NaN fails too
        problems.append(f"GUANO Loc Position {value!r} is not a latitude in -90..90 and a longitude in -180..180")
        return None, None
    return latitude, longitude


def _metadata_chunks(file: BinaryIO) -> tuple[str | None, bytes | None]:
    """(the INFO comment, the guan chunk's body) of a RIFF/WAVE file; None for each one absent."""
    file.seek(0, io.SEEK_END)
    size = file.tell()
    file.seek(0)
    head = file.read(12)
    if len(head) < 12 or head[:4] != b"RIFF" or head[8:] != b"WAVE":
        return None, None
    comment = guano = None
    position = 12
    for _ in range(MAX_CHUNKS):
        if position + 8 > size:
            break
        file.seek(position)
        chunk_id, chunk_size = struct.unpack("<4sI", file.read(8))
        body_at = position + 8
        if body_at + chunk_size > size:  # a chunk that runs past the end: nothing after it can be trusted
            break
        if chunk_id in (b"LIST", b"guan") and chunk_size <= MAX_METADATA_CHUNK_BYTES:
            body = file.read(chunk_size)
            if chunk_id == b"guan":
                guano = body
            elif body[:4] == b"INFO":
                comment = _info_comment(body[4:]) or comment
        position = body_at + chunk_size + (chunk_size & 1)  # chunks are padded to an even size
    return comment, guano


def _info_comment(info: bytes) -> str | None:
    """The ICMT text of a LIST/INFO body, up to its first NUL."""
    position = 0
    while position + 8 <= len(info):
        sub_id, sub_size = struct.unpack_from("<4sI", info, position)
        if sub_id == b"ICMT":
            text = info[position + 8 : position + 8 + sub_size].split(b"\x00", 1)[0]
            return text.decode("utf-8", errors="replace")
        position += 8 + sub_size + (sub_size & 1)
    return None


def _note(problems: list[str] | None, problem: str) -> None:
    if problems is not None:
        problems.append(problem)
