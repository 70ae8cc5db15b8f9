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
