"""gunicorn settings for the service at scale: ``gunicorn -c infra/gunicorn.conf.py 'addin_service:create_app()'``.

Why these values:

* ``gthread`` workers: a report spends most of its life waiting on Exchange or Graph, so each
  process serves many requests on threads; several processes use every core (Python runs one
  thread at a time per process).
* No ``preload_app``: every worker builds its own app after the fork, so no database pool, lock
  file descriptor or thread is shared across processes.
* No access log: ``/ack/<token>`` and ``/cases/<id>?access=`` carry signed tokens, and nothing that identifies
  a reporter belongs in a plain access log. The service logs each request itself (JSON, with the
  request id and no secrets).
* The notification worker does not run inside gunicorn's processes: run ``addin-service worker``
  beside it (any number of each can share one PostgreSQL database and evidence store).
* ``/metrics`` adds up every worker process: ``PROMETHEUS_MULTIPROC_DIR`` (prometheus_client's
  multiprocess mode) is set to a private directory made here, and removed at exit, unless it is
  already set. A directory you set is yours: it is neither emptied nor removed, so counters carry on
  across restarts, and ``addin-service worker`` processes given the same directory on the same host
  are counted too.

Override any value with gunicorn's own ``GUNICORN_CMD_ARGS`` (for example
``GUNICORN_CMD_ARGS="--bind 127.0.0.1:9000 --workers 4"``); ``WEB_CONCURRENCY`` sets the number of
processes, as on most platforms.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

bind = "0.0.0.0:8000"
worker_class = "gthread"
workers = int(os.environ.get("WEB_CONCURRENCY", str(max(2, os.cpu_count() or 1))))
threads = 8
# A 100 MB capture over a slow link can take minutes; gthread workers keep beating while a
# request runs, so this bounds only a worker that is truly stuck.
timeout = 300
graceful_timeout = 30
keepalive = 5
preload_app = False
accesslog = None
errorlog = "-"
loglevel = os.environ.get("ADDIN_LOG_LEVEL", "info")

# Set before any worker imports prometheus_client, which reads it at import.
_METRICS_PREFIX = "addin-metrics-"
if not os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = tempfile.mkdtemp(prefix=_METRICS_PREFIX)


def on_exit(server: Any) -> None:
    """Remove the metrics directory if this file made it (also after a reload re-read this file)."""
    folder = Path(os.environ.get("PROMETHEUS_MULTIPROC_DIR", ""))
    if folder.parent == Path(tempfile.gettempdir()) and folder.name.startswith(_METRICS_PREFIX):
        shutil.rmtree(folder, ignore_errors=True)
