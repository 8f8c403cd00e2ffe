"""Telling the right people about a report, reliably.

Where things live:

* ``ports.py`` — the ``Directory`` and ``Sender`` ports (adapters: ``mail/ews_directory.py``,
  ``mail/graph_directory.py``; ``smtp.py``, ``mail/ews_sender.py``, ``mail/graph_sender.py``).
* ``supervisors.py``, ``supervisor_map.py`` — who the reporter's managers are (directory → mapping
  file → fallback mailbox).
* ``filing.py``, ``compose.py``, ``templates/`` — the routing plan turned into rendered emails, queued
  in the filing transaction; ``mime.py`` — those emails as SMTP bytes.
* ``models.py``, ``outbox.py``, ``backoff.py``, ``worker.py``, ``metrics.py`` — the durable outbox and
  the workers that send from it.
* ``ack.py`` — "I have seen this" links and page; escalation lives in the worker.
* ``bootstrap.py``, ``cli.py`` — wiring, ``addin-service worker`` and ``addin-service outbox``.

Nothing here connects, reads or starts a thread at import time.
"""
