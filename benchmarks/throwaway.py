"""The throw-away database every benchmark runs on: an embedded server in a temporary folder, never DATABASE_URL.

Benchmarks load millions of rows and delete them: they must never reach a configured server.
Everything below the temporary folder (the database, and the audio and cache folders when asked
for) is deleted when the process exits.
"""

from __future__ import annotations

import atexit
import os
import shutil
import tempfile
from pathlib import Path


def start_throwaway_django(*, prefix: str = "echoroo-bench-", folders: tuple[str, ...] = ()) -> Path:
    """Set Django up on a fresh embedded server; the scratch folder holds `pgdata` and each of `folders`.

    "audio" becomes AUDIO_ROOT and "cache" ECHOROO_CACHE_DIR when asked for.
    """
    scratch = Path(tempfile.mkdtemp(prefix=prefix))
    # atexit runs last-registered first: pgserver stops the server (registered later), then this deletes it.
    atexit.register(shutil.rmtree, scratch, ignore_errors=True)
    for name in ("pgdata", *folders):
        (scratch / name).mkdir()
    os.environ["ECHOROO_PGDATA"] = str(scratch / "pgdata")
    if "audio" in folders:
        os.environ["AUDIO_ROOT"] = str(scratch / "audio")
    if "cache" in folders:
        os.environ["ECHOROO_CACHE_DIR"] = str(scratch / "cache")
    os.environ.pop("DATABASE_URL", None)
    os.environ.pop("REDIS_URL", None)  # tasks go to the throw-away database's queue, not a configured Redis
    os.environ["DJANGO_SETTINGS_MODULE"] = "echoroo.settings"

    import django
    from django.conf import settings

    settings.DATABASES["default"]["PGDATA_CLEANUP"] = "delete"  # the server removes its data when we exit
    django.setup()
    return scratch
