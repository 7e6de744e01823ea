"""gunicorn's settings for Echoroo ML, read by `manage.py serve`, the Docker image and a plain `gunicorn`
started in this folder. WEB_WORKERS and WEB_THREADS change the two that matter.

Sync workers (one request at a time per process) by default: an idle process takes the next
connection waiting, so requests are served first come, first served across all processes. With
threaded workers a kept-alive connection stays with the process that accepted it, busy or not: under
20 clients searching and listing predictions while a BirdNET job ran on 2 cores (benchmarks/load.py)
2 processes of 4 threads answered at p95 267 ms and p99 380 ms, 5 of 4 threads at p95 230 ms and
p99 840 ms, 6 sync processes at p95 121 ms and p99 153 ms, at the same or better throughput.
Behind a proxy on the internet, let it buffer slow clients (nginx does by default): a sync process
is held for as long as its client takes to send the request and read the answer.
"""

import os

from echoroo.cpus import usable_cpus

# gunicorn's own advice: (2 x cores) + 1, counting the cores this container may use.
workers = int(os.environ.get("WEB_WORKERS") or 2 * usable_cpus() + 1)
# More than 1 switches gunicorn to its threaded workers.
threads = int(os.environ.get("WEB_THREADS") or 1)
# Query by audio embeds its snippet in the web process; exports of large tables stream for long.
timeout = 300
