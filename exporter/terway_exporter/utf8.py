"""Text from the APIs as valid UTF-8, so it can become a label value.

JSON may carry a lone surrogate (`"\\ud800"`), which Python decodes into a str that cannot be
encoded as UTF-8: the exposition formatter then fails, and every collector that renders the value
fails with it, on every render. Such characters are replaced by U+FFFD where the text enters.
"""

from __future__ import annotations


def valid_utf8(text: str) -> str:
    """`text` itself when it encodes as UTF-8 (the common, cheap case), else with U+FFFD for the bad code points."""
    if text.isascii():
        return text
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        # Through UTF-16: a surrogate pair JSON escaped as two code points becomes its character
        # again, and only an unpaired surrogate becomes U+FFFD.
        return text.encode("utf-16", "surrogatepass").decode("utf-16", "replace")
    return text
