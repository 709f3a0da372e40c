"""The one scrubber: credentials out of every log line, error string and status message.

Code must not put secrets into text in the first place; this is the last line of defence, because
SDK exceptions can carry a request URL, a string-to-sign or a token in their message. `redact`
keeps the text's layout (log records, tracebacks); `scrub` also folds it into one short line, the
form errors take in a source's status, a metric's label-free error text and the `check` report.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from urllib.parse import quote

REDACTED = "<redacted>"
MAX_MESSAGE = 300

# Parameter names whose values are secrets or derived from them, in query strings, form bodies,
# JSON and "k: v" text, raw or percent-encoded once or twice (the SDK signs query strings:
# aliyunsdkcore/auth/composer/rpc_signature_composer.py).
_SECRET_PARAMS = re.compile(
    r"(?i)(AccessKeyId|AccessKeySecret|SecurityToken|Signature|OIDCToken|Credential|Password|Token|"
    r"access_?key_?id|access_?key_?secret|access_secret|security_?token)"
    r"((?:=|%3D|%253D)|[\"']?\s*[:=]\s*[\"']?)([^&\s\"',}]+)"
)
# Bearer tokens (a Kubernetes service-account token in an Authorization header).
_BEARER = re.compile(r"(?i)(bearer\s+)[A-Za-z0-9._\-]+")
# AccessKey IDs by their shape: long-term keys start with LTAI, STS ones with "STS.".
_ACCESS_KEY_ID = re.compile(r"\b(?:LTAI|STS\.)[A-Za-z0-9.]{8,}")
# The SDK and the server echo the StringToSign (it holds the AK and the STS token): drop the rest.
_STRING_TO_SIGN = re.compile(r"(?is)(string\s*to\s*sign\s*(?:is)?\s*:?).*")


def redact(text: object, secrets: Iterable[str] = ()) -> str:
    """`text` with every credential replaced by REDACTED; `secrets` are known values to remove too
    (the credential in use), raw and percent-encoded once or twice."""
    out = _STRING_TO_SIGN.sub(lambda m: m.group(1) + REDACTED, str(text))
    out = _SECRET_PARAMS.sub(lambda m: m.group(1) + m.group(2) + REDACTED, out)
    out = _BEARER.sub(lambda m: m.group(1) + REDACTED, out)
    out = _ACCESS_KEY_ID.sub(REDACTED, out)
    for secret in secrets:
        if secret and len(secret) >= 4:
            for form in {secret, quote(secret, safe=""), quote(quote(secret, safe=""), safe="")}:
                out = out.replace(form, REDACTED)
    return out


def scrub(text: object, secrets: Iterable[str] = ()) -> str:
    """One line of `text` with every credential removed, at most MAX_MESSAGE characters."""
    out = " ".join(redact(text, secrets).split())
    return out if len(out) <= MAX_MESSAGE else out[: MAX_MESSAGE - 3] + "..."
