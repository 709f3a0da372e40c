"""Logging setup: text or JSON lines on stderr, with credentials scrubbed from every record.

The scrubber is the last line of defence: code must not log secrets in the first
place, but SDK exceptions can carry a string-to-sign or a token in their message.
"""

from __future__ import annotations

import json
import logging
import re
import sys
import time

# AccessKeyId (LTAI..., STS.*), AccessKeySecret/SecurityToken values in key=value or JSON form, bearer tokens.
_SECRET_PATTERNS = (
    re.compile(r"(?i)((?:access_?key_?secret|accesskeysecret|access_secret|security_?token|securitytoken|"
               r"signature|password|token)[\"']?\s*[:=]\s*[\"']?)[^\"'&\s,}]+"),
    re.compile(r"(?i)(bearer\s+)[A-Za-z0-9._\-]+"),
    re.compile(r"\b(LTAI|STS\.)[A-Za-z0-9.]{8,}"),
)


def scrub(text: str) -> str:
    for pattern in _SECRET_PATTERNS:
        text = pattern.sub(lambda m: (m.group(1) if m.lastindex else "") + "***", text)
    return text


class ScrubbingFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        return scrub(super().format(record))


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry = {
            "ts": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created)) + f".{int(record.msecs):03d}Z",
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": record.getMessage(),
        }
        if record.exc_info:
            entry["exc"] = self.formatException(record.exc_info)
        return scrub(json.dumps(entry, ensure_ascii=False))


def setup_logging(level: str = "info", fmt: str = "text") -> None:
    handler = logging.StreamHandler(sys.stderr)
    if fmt == "json":
        handler.setFormatter(JsonFormatter())
    else:
        handler.setFormatter(ScrubbingFormatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    # The SDKs log request details at INFO/DEBUG; keep them quiet unless debugging.
    for noisy in ("aliyunsdkcore", "urllib3", "kubernetes", "aiohttp.access"):
        logging.getLogger(noisy).setLevel(max(logging.WARNING, root.level))
