"""API keys: who may call the rerank routes, checked before a byte of the body is read.

Keys live in a file, one per line (a Kubernetes Secret mounted as a volume, so rotating the Secret
rotates the keys without a restart: the file is re-read when it changes). Every Cohere, Jina and
TEI client already sends `Authorization: Bearer <key>`, so that is the only scheme.

Keys are compared as SHA-256 digests with `hmac.compare_digest`, against every key each time, so
neither the key's length nor which key matched shows in the response time. Keys are never logged.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import threading
import time
from collections.abc import Callable, Collection
from dataclasses import dataclass
from pathlib import Path
from typing import Final

from starlette.types import ASGIApp, Receive, Scope, Send

from reranker_server.errors import RerankerError, Unauthorized, error_response

log = logging.getLogger(__name__)

#: How often a request may look at the key file's modification time (a mounted Secret changes rarely).
RECHECK_S: Final = 10.0
SCHEME: Final = "bearer"


class ApiKeyError(ValueError):
    """The key file cannot be used: the server must not start (it would serve without keys)."""


def _digest(key: str) -> bytes:
    return hashlib.sha256(key.encode()).digest()


@dataclass(frozen=True)
class ApiKeys:
    """The accepted keys, as digests only; none, with the reason, when the file stopped holding any."""

    digests: tuple[bytes, ...]
    problem: str | None = None

    @classmethod
    def parse(cls, text: str, source: str) -> ApiKeys:
        """One key per line; blank lines and `#` comments are ignored, surrounding spaces stripped."""
        keys = [line.strip() for line in text.splitlines()]
        keys = [key for key in keys if key and not key.startswith("#")]
        if not keys:
            raise ApiKeyError(f"{source} holds no API key (one key per line; blank and # lines are ignored)")
        if any(any(char.isspace() for char in key) for key in keys):
            raise ApiKeyError(f"{source}: an API key contains whitespace; write one key per line")
        return cls(tuple(_digest(key) for key in dict.fromkeys(keys)))

    def allows(self, presented: str) -> bool:
        presented_digest = _digest(presented)
        matched = False
        for digest in self.digests:
            matched |= hmac.compare_digest(presented_digest, digest)
        return matched


def _read(path: Path) -> tuple[ApiKeys, tuple[int, int]]:
    try:
        stat = path.stat()
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
        raise ApiKeyError(f"cannot read the API key file {path}: {reason}") from None
    return ApiKeys.parse(text, f"the API key file {path}"), (stat.st_mtime_ns, stat.st_size)


class KeyFile:
    """The keys of one file, re-read when the file changes.

    A new version that is empty, unreadable or gone accepts no key at all (fail closed): emptying the
    Secret is how an operator revokes every key, and the server must not keep serving the old ones.
    """

    def __init__(self, path: Path, *, clock: Callable[[], float] = time.monotonic) -> None:
        self.path = path
        self._clock = clock
        self._keys: ApiKeys
        self._version: tuple[int, int] | None
        self._keys, self._version = _read(path)
        self._checked = clock()
        self._lock = threading.Lock()

    def current(self) -> ApiKeys:
        now = self._clock()
        if now - self._checked >= RECHECK_S:
            with self._lock:
                self._checked = now
                self._reload()
        return self._keys

    def _reload(self) -> None:
        try:
            stat = self.path.stat()
            if (stat.st_mtime_ns, stat.st_size) == self._version:
                return
            self._keys, self._version = _read(self.path)
            log.info("API keys reloaded from %s (%d keys)", self.path, len(self._keys.digests))
        except (OSError, ApiKeyError) as exc:
            if self._keys.problem is None:
                log.error("refusing every request until the API key file holds keys again: %s", exc)
            self._keys, self._version = ApiKeys((), problem=str(exc)), None


def presented_key(scope: Scope) -> str | None:
    """The key of an `Authorization: Bearer <key>` header, or None when there is none."""
    for name, value in scope["headers"]:
        if name == b"authorization":
            scheme, _, key = value.decode("latin-1").strip().partition(" ")
            if scheme.lower() == SCHEME and key.strip():
                return key.strip()
            return None
    return None


class ApiKeyGuard:
    """Refuse requests to the protected paths without a valid key: 401, the usual error envelope."""

    def __init__(
        self,
        app: ASGIApp,
        *,
        keys: KeyFile,
        paths: Collection[str],
        on_reject: Callable[[RerankerError], None],
    ) -> None:
        self.app = app
        self.keys = keys
        self.paths = frozenset(paths)
        self.on_reject = on_reject

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] not in self.paths:
            await self.app(scope, receive, send)
            return
        key = presented_key(scope)
        if key is None:
            error = Unauthorized(
                "this server requires an API key: send the header 'Authorization: Bearer <key>'",
                param="Authorization",
            )
        elif (keys := self.keys.current()).problem is not None:
            error = Unauthorized(
                "the server holds no valid API keys (its key file is empty or unreadable): every request "
                "is refused until it holds keys again",
                param="Authorization",
            )
        elif not keys.allows(key):
            error = Unauthorized("the API key is not valid", param="Authorization")
        else:
            await self.app(scope, receive, send)
            return
        self.on_reject(error)
        await error_response(error)(scope, receive, send)
