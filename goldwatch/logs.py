"""Logging: human-readable lines by default, JSON lines (``--log-format json``) for log shippers.

Secrets are registered with :func:`redact` and replaced by ``[REDACTED]`` in every record, whatever logger emits
it, so a routing key that slips into an exception message still never reaches the log.
"""

from __future__ import annotations

import json
import logging
import sys
import time
from typing import Literal, TextIO

__all__ = ["JsonFormatter", "configure_logging", "get_logger", "redact"]

_SECRETS: set[str] = set()
_RESERVED = set(logging.LogRecord("", 0, "", 0, "", (), None).__dict__) | {"message", "asctime"}


def redact(secret: str | None) -> None:
    """Register ``secret`` so that it is masked in every log line from now on (short values are ignored)."""
    if secret and len(secret) >= 6:
        _SECRETS.add(secret)


def _mask(text: str) -> str:
    for secret in _SECRETS:
        if secret in text:
            text = text.replace(secret, "[REDACTED]")
    return text


class _RedactingFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        if _SECRETS:
            record.msg = _mask(record.getMessage())
            record.args = None
            for key, value in list(record.__dict__.items()):
                if key not in _RESERVED and isinstance(value, str):
                    setattr(record, key, _mask(value))
        return True


class JsonFormatter(logging.Formatter):
    """One JSON object per line: ts, level, logger, msg, plus any ``extra=`` fields."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, object] = {
            "ts": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created)) + f".{int(record.msecs):03d}Z",
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": record.getMessage(),
        }
        for key, value in record.__dict__.items():
            if key not in _RESERVED and not key.startswith("_"):
                entry[key] = value
        if record.exc_info:
            entry["exc"] = _mask(self.formatException(record.exc_info))
        return json.dumps(entry, default=str)


def configure_logging(
    *, level: str = "info", fmt: Literal["text", "json"] = "text", stream: TextIO | None = None
) -> None:
    """Configure the ``goldwatch`` logger tree (idempotent: replaces handlers set by an earlier call)."""
    root = logging.getLogger("goldwatch")
    for handler in list(root.handlers):
        root.removeHandler(handler)
    handler = logging.StreamHandler(stream or sys.stderr)
    if fmt == "json":
        handler.setFormatter(JsonFormatter())
    else:
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)-7s %(name)s: %(message)s"))
    handler.addFilter(_RedactingFilter())
    root.addHandler(handler)
    root.setLevel(level.upper())
    root.propagate = False


def get_logger(name: str) -> logging.Logger:
    """A logger under the ``goldwatch`` tree; pass ``__name__``."""
    return logging.getLogger(name if name.startswith("goldwatch") else f"goldwatch.{name}")
