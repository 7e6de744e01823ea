"""BirdNET's 48-week year: four weeks to a month, as BirdNET-Analyzer counts them."""

from __future__ import annotations

import datetime
import math

ALL_YEAR = -1


def birdnet_week(date: datetime.date) -> int:
    """The week (1-48) that BirdNET's range model takes for a date: days 1-7 of a month are its first week,
    8-14 the second, 15-21 the third and 22 to the month's end the fourth.

    BirdNET-Analyzer's own help says "Values in [1, 48] (4 weeks per month)". birdnetlib instead scales the
    day of the year (ceil(day_of_year / days_in_year * 48)), which can differ by one week.
    """
    return (date.month - 1) * 4 + min(4, math.ceil(date.day / 7))
