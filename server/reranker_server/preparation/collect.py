"""Garbage collection of artefacts on a shared cache claim, run by each preparation after it succeeded.

The rule: an artefact directory is deleted when (1) it is not the one just prepared, (2) it is not in
`keep` (the operator passes the artefacts of every preparation Job that still exists for the claim,
i.e. of every recipe some RerankerDeployment still uses), and (3) it was prepared more than
`older_than_s` ago, so a recipe re-prepared by a Job created after `keep` was computed survives.
Scratch directories of a preparation in progress (`.<name>.partial-*`) are never touched.
"""

from __future__ import annotations

import datetime
import logging
import shutil
from collections.abc import Iterable
from pathlib import Path
from typing import Final

from reranker_server.artefact import MANIFEST_NAME, ArtefactError, read_artefact

log = logging.getLogger(__name__)

DEFAULT_GRACE_S: Final = 24 * 3600.0


def prepared_at(directory: Path) -> float:
    """When the artefact was prepared (its manifest), else its directory's modification time."""
    if (directory / MANIFEST_NAME).is_file():
        try:
            stamp = read_artefact(directory)[1].prepared_at
            return (
                datetime.datetime.strptime(stamp, "%Y-%m-%dT%H:%M:%SZ")
                .replace(tzinfo=datetime.UTC)
                .timestamp()
            )
        except (ArtefactError, ValueError):
            pass
    return directory.stat().st_mtime


def collect_garbage(
    root: Path, *, keep: Iterable[str], now: float, older_than_s: float = DEFAULT_GRACE_S
) -> list[str]:
    """Delete the unused, old artefact directories under `root`; return their names."""
    if not root.is_dir():
        return []
    kept = set(keep)
    deleted = []
    for directory in sorted(p for p in root.iterdir() if p.is_dir()):
        if directory.name in kept or directory.name.startswith("."):
            continue
        if now - prepared_at(directory) < older_than_s:
            continue
        shutil.rmtree(directory, ignore_errors=True)
        deleted.append(directory.name)
        log.info("deleted unused artefact %s (no RerankerDeployment uses it)", directory)
    return deleted
