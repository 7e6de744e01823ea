"""How many CPUs this process may use: what sizes the web server, the worker cluster and import threads.

`os.cpu_count()` counts the host's CPUs; in a container limited with `--cpuset-cpus` or `--cpus`
that over-counts, and every default sized from it (processes, threads) oversubscribes the CPUs.
No Django import here: gunicorn's config file uses it.
"""

from __future__ import annotations

import math
import os
from pathlib import Path

# cgroup v2's CPU quota: "max 100000" (none) or "<quota µs> <period µs>" (e.g. docker --cpus 1.5).
CGROUP_CPU_MAX = Path("/sys/fs/cgroup/cpu.max")


def usable_cpus(cpu_max: Path = CGROUP_CPU_MAX) -> int:
    """The CPUs this process may run on, capped by its cgroup's CPU quota (rounded up); at least 1."""
    try:
        count = len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        count = os.cpu_count() or 1
    try:
        quota, period = cpu_max.read_text().split()
        if quota != "max":
            count = min(count, math.ceil(int(quota) / int(period)))
    except (OSError, ValueError):
        pass
    return max(1, count)
