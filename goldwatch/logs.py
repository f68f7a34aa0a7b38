"""Logging: human-readable lines by default, JSON lines (``--log-format json``) for log shippers.

Secrets are registered with :func:`redact` and replaced by ``[REDACTED]`` in every record, whatever logger emits
it, so a routing key that slips into an exception message still never reaches the log. Passwords inside URLs
(``scheme://user:PASSWORD@host``, ``password=PASSWORD``) are masked in every record too, registered or not
(:func:`mask_url`).

>>> mask_url("connect postgresql://gw:s3cret@db:5432/r failed")
'connect postgresql://gw:***@db:5432/r failed'
"""

from __future__ import annotations

import json
import logging
import re
import sys
import time
from typing import Literal, TextIO

__all__ = ["JsonFormatter", "configure_logging", "get_logger", "mask_url", "redact"]

_SECRETS: set[str] = set()
_RESERVED = set(logging.LogRecord("", 0, "", 0, "", (), None).__dict__) | {"message", "asctime"}


def redact(secret: str | None) -> None:
    """Register ``secret`` so that it is masked in every log line from now on (short values are ignored)."""
    if secret and len(secret) >= 6:
        _SECRETS.add(secret)


# scheme://user:password@ -- the password is everything between the first ':' after '//' and the '@'.
_USERINFO = re.compile(r"(?P<head>[A-Za-z][A-Za-z0-9+.-]*://[^/@:\s]*:)(?P<pw>[^@\s/]*)(?P<at>@)")
_PASSWORD_PARAM = re.compile(r"(?P<head>\bpassword=)(?P<pw>[^\s&'\"]+)", re.IGNORECASE)


def mask_url(text: str) -> str:
    """``text`` with every password inside a URL (``user:PASSWORD@``, ``password=PASSWORD``) replaced by ``***``."""
    if "://" in text:
        text = _USERINFO.sub(lambda m: m["head"] + "***" + m["at"], text)
    if "password=" in text.lower():
        text = _PASSWORD_PARAM.sub(lambda m: m["head"] + "***", text)
    return text


def _mask(text: str) -> str:
    for secret in _SECRETS:
        if secret in text:
            text = text.replace(secret, "[REDACTED]")
    return mask_url(text)


class _RedactingFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
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
