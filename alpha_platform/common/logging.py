"""A logging filter that keeps secrets out of log lines (defence in depth).

Secret values are wrapped in ``Secret`` and never logged on purpose; this filter also
masks the shapes a secret has when something logs one by accident: private keys
(0x + 64 hex), and key=value pairs whose key names a secret.
"""

from __future__ import annotations

import logging
import re

_PATTERNS = [
    re.compile(r"0x[0-9a-fA-F]{64}"),
    re.compile(
        r"(?i)((?:api[_-]?key|api[_-]?secret|secret|private[_-]?key|password|signature|"
        r"authorization|x-mbx-apikey)[\"']?\s*[:=]\s*[\"']?)((?:bearer\s+)?[^\s\"',}&]+)"
    ),
    re.compile(r"(?i)(bearer\s+)([A-Za-z0-9._\-]+)"),
]


def redact(text: str) -> str:
    text = _PATTERNS[0].sub("0x" + "*" * 8, text)
    for pattern in _PATTERNS[1:]:
        text = pattern.sub(lambda m: m.group(1) + "********", text)
    return text


class RedactSecretsFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except Exception:  # a broken format string is not ours to fix here
            return True
        cleaned = redact(message)
        if cleaned != message:
            record.msg, record.args = cleaned, None
        if record.exc_info and not record.exc_text:
            record.exc_text = redact(logging.Formatter().formatException(record.exc_info))
        elif record.exc_text:
            record.exc_text = redact(record.exc_text)
        return True


# --------------------------------------------------------------------------- JSON lines
import datetime as _dt  # noqa: E402
import json  # noqa: E402
from typing import Any  # noqa: E402

# Attributes every LogRecord has: anything else on a record came from ``extra=``.
_RECORD_ATTRS = frozenset(logging.LogRecord("", 0, "", 0, "", (), None).__dict__) | {
    "message", "asctime", "taskName"}
_SECRET_KEY = re.compile(r"(?i)(api[_-]?key|api[_-]?secret|secret|private[_-]?key|password|passphrase|"
                         r"signature|authorization|token|credentials?)$")
_MAX_DEPTH = 6


def _clean(value: Any, depth: int = 0) -> Any:
    """A JSON-safe copy of an ``extra`` value, with secrets masked: strings through
    ``redact``, and the whole value of any key that names a secret."""
    if isinstance(value, str):
        return redact(value)
    if value is None or isinstance(value, bool | int | float):
        return value
    if depth >= _MAX_DEPTH:
        return redact(str(value))
    if isinstance(value, dict):
        return {str(k): "********" if _SECRET_KEY.search(str(k)) and v not in (None, "")
                else _clean(v, depth + 1) for k, v in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        return [_clean(v, depth + 1) for v in value]
    if isinstance(value, _dt.datetime | _dt.date):
        return value.isoformat()
    return redact(str(value))  # Decimal, UUID, model instances, Secret (masks itself)


class JsonFormatter(logging.Formatter):
    """One JSON object per line: ``time`` (UTC, ISO 8601), ``level``, ``logger``,
    ``message``, ``process``, then every ``extra=`` field (e.g. ``decision``, ``order``),
    and ``exc`` for a traceback. The same redaction as ``RedactSecretsFilter`` applies to
    the message, the traceback and every extra value, so the formatter is safe even on a
    handler without the filter."""

    def format(self, record: logging.LogRecord) -> str:
        try:
            message = record.getMessage()
        except Exception:  # a broken format string: keep the template rather than lose the line
            message = str(record.msg)
        out: dict[str, Any] = {
            "time": _dt.datetime.fromtimestamp(record.created, _dt.UTC).isoformat(timespec="milliseconds")
            .replace("+00:00", "Z"),
            "level": record.levelname,
            "logger": record.name,
            "message": redact(message),
            "process": record.process,
        }
        for key, value in record.__dict__.items():
            if key in _RECORD_ATTRS or key.startswith("_") or key in out:
                continue
            out[key] = "********" if _SECRET_KEY.search(key) and value not in (None, "") else _clean(value)
        if record.exc_info:
            out["exc"] = redact(record.exc_text or self.formatException(record.exc_info))
        elif record.exc_text:
            out["exc"] = redact(record.exc_text)
        if record.stack_info:
            out["stack"] = redact(self.formatStack(record.stack_info))
        return json.dumps(out, ensure_ascii=False, default=str)
