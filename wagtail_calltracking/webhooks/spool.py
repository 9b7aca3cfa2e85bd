"""The spool: webhook requests that could not be stored in the database.

When the database is unreachable a verified webhook is still answered (fail-open) and the
request is written here, so that ``calltracking_replay_webhooks --spool`` can store and
process it later. Each record is one JSON document:

* always logged, on one line, by the ``wagtail_calltracking.webhooks.spool`` logger as
  ``CALLTRACKING_SPOOL {json}`` (ERROR level): a log file is itself a replayable spool;
* and, when ``WEBHOOK_SPOOL_DIR`` is set, written to a file of its own in that directory.

Only requests whose signature was verified are spooled: the replay trusts the verdict (the
spool is a local file written by this process; provider timestamps will be stale by then).
"""

from __future__ import annotations

import base64
import json
import logging
import os
import uuid
from pathlib import Path

from ..conf import ct_settings

logger = logging.getLogger("wagtail_calltracking.webhooks.spool")

MARKER = "CALLTRACKING_SPOOL "


def record_for(view, request, body: bytes, received_at, error: str = "") -> dict:
    from .base import loggable_headers, public_url

    try:
        url = public_url(request)
    except Exception:  # noqa: BLE001 — a bad Host header must not prevent spooling
        url = request.get_full_path()
    return {
        "version": 1,
        "provider": view.provider,
        "endpoint": view.endpoint,
        "received_at": received_at.isoformat(),
        "method": request.method,
        "url": url,
        "path": request.get_full_path(),
        "content_type": request.META.get("CONTENT_TYPE", ""),
        "headers": loggable_headers(request),
        "body_b64": base64.b64encode(body).decode("ascii"),
        "signature_valid": True,
        "error": error[:1000],
    }


def write(view, request, body: bytes, received_at, error: str = "") -> dict | None:
    """Log (and, if configured, file) the request. Never raises."""
    try:
        record = record_for(view, request, body, received_at, error)
        document = json.dumps(record, separators=(",", ":"))
    except Exception:  # noqa: BLE001
        logger.exception("could not serialise a webhook for the spool")
        return None
    logger.error("%s%s", MARKER, document)
    directory = ct_settings.WEBHOOK_SPOOL_DIR
    if directory:
        try:
            path = Path(directory)
            path.mkdir(parents=True, exist_ok=True)
            name = f"{received_at:%Y%m%dT%H%M%S%f}-{view.provider}-{uuid.uuid4().hex[:8]}.json"
            temporary = path / (name + ".tmp")
            temporary.write_text(document)
            os.replace(temporary, path / name)  # atomic: the replay never reads half a file
        except OSError:
            logger.exception("could not write the webhook spool file in %s", directory)
    return record


def read_records(paths) -> list[tuple[Path, dict]]:
    """Records from spool files (one JSON document each) or log files (lines carrying the
    ``CALLTRACKING_SPOOL`` marker). Unreadable entries are skipped with a warning."""
    records = []
    for path in map(Path, paths):
        files = sorted(path.glob("*.json")) if path.is_dir() else [path]
        for file in files:
            try:
                text = file.read_text()
            except OSError as error:
                logger.warning("cannot read %s: %s", file, error)
                continue
            stripped = text.strip()
            if stripped.startswith("{"):
                try:
                    records.append((file, json.loads(stripped)))
                except ValueError:
                    logger.warning("%s is not a spool record", file)
                continue
            for line in text.splitlines():
                position = line.find(MARKER)
                if position < 0:
                    continue
                try:
                    records.append((file, json.loads(line[position + len(MARKER) :])))
                except ValueError:
                    logger.warning("unreadable spool line in %s", file)
    return [(file, record) for file, record in records if isinstance(record, dict)]
