"""The recording time that field recorders write into their file names."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta, timezone
from pathlib import PurePath

# YYYYMMDD_HHMMSS, alone (AudioMoth: 20260401_053000.WAV) or after a prefix ending in "_" or "-"
# (Song Meter: SMM01234_20260401_053000.wav, S4A01234_..., or a site name a person added).
# After the stamp: an optional zone ("Z", "+0100", "-0500"), then an optional suffix that does
# not start with a digit ("_000" from split files, "T" from AudioMoth's triggered recordings,
# and the extension).
_STAMP = re.compile(
    r"""
    ^(?:.*?[_-])??
    (?P<date>\d{8})_(?P<time>\d{6})
    (?P<zone>Z|[+-]\d{4})?
    (?:[^0-9].*)?$
    """,
    re.VERBOSE | re.IGNORECASE,
)


def parse_recorded_at(filename: str) -> datetime | None:
    """The start time in a recorder's file name; naive (recorder-local) unless the name gives a zone.

    Returns None when the name has no such stamp or the stamp is not a real date and time
    (month 13, 25 o'clock). A "Z" suffix means UTC and "+HHMM"/"-HHMM" an offset from it;
    then the result is aware. Otherwise it is naive: the caller knows the recorder's zone.
    """
    match = _STAMP.match(PurePath(filename).name)
    if match is None:
        return None
    try:
        recorded_at = datetime.strptime(match["date"] + match["time"], "%Y%m%d%H%M%S")
    except ValueError:
        return None
    zone = match["zone"]
    if zone is None:
        return recorded_at
    if zone.upper() == "Z":
        return recorded_at.replace(tzinfo=UTC)
    hours, minutes = int(zone[1:3]), int(zone[3:5])
    if hours > 23 or minutes > 59:
        return None
    offset = timedelta(hours=hours, minutes=minutes)
    return recorded_at.replace(tzinfo=timezone(offset if zone[0] == "+" else -offset))
