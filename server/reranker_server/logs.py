"""Logging set-up for the process: human text or one JSON object per line (for log pipelines)."""

from __future__ import annotations

import logging
import time
from typing import Final, Literal

import orjson

TEXT_FORMAT: Final = "%(asctime)s %(levelname)-7s %(name)s: %(message)s"


class JsonFormatter(logging.Formatter):
    """One JSON object per record: time, level, logger, message and the exception, if any."""

    def format(self, record: logging.LogRecord) -> str:
        entry = {
            "time": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
            + f".{int(record.msecs):03d}Z",
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return orjson.dumps(entry).decode()


#: Loggers whose INFO lines are ours to show: the server's own and uvicorn's start-up and access lines.
OWN_LOGGERS: Final = ("reranker_server", "uvicorn")
Level = Literal["debug", "info", "warning", "error"]


class OthersBelowWarning(logging.Filter):
    """Drops other libraries' records below WARNING. ONNX Runtime's optimizer logs each fusion and its
    quantizer one line per tensor (through the root logger): dozens of lines per preparation that say
    nothing to an operator. `--log-level debug` shows them."""

    def filter(self, record: logging.LogRecord) -> bool:
        return record.levelno >= logging.WARNING or record.name.startswith(OWN_LOGGERS)


def configure(log_format: Literal["text", "json"], level: Level = "info") -> None:
    """Route every logger (ours, uvicorn's, ONNX Runtime's Python side) through one handler."""
    handler = logging.StreamHandler()
    handler.setFormatter(JsonFormatter() if log_format == "json" else logging.Formatter(TEXT_FORMAT))
    if level != "debug":
        handler.addFilter(OthersBelowWarning())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    for name in ("uvicorn", "uvicorn.error", "uvicorn.access"):
        logging.getLogger(name).handlers[:] = []
        logging.getLogger(name).propagate = True
