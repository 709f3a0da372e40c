"""Typed reads from raw Kubernetes JSON, shared by the projection functions.

The source parses API responses with `json.loads` and never builds the client's
generated models, so every projection walks plain dicts. These helpers make a
missing field a default and a field of the wrong type a `ProjectionError`: the
reflector logs that one object and skips it, and the rest of the store stays intact.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from ...utf8 import valid_utf8


class ProjectionError(ValueError):
    """An object whose shape the projection cannot read (the message names the field)."""


def obj(parent: Any, key: str) -> dict[str, Any]:
    """`parent[key]` as a mapping; {} when absent or null."""
    value = _get(parent, key)
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise ProjectionError(f"{key} is a {type(value).__name__}, not an object")
    return value


def items(parent: Any, key: str) -> list[Any]:
    """`parent[key]` as a list; [] when absent or null."""
    value = _get(parent, key)
    if value is None:
        return []
    if not isinstance(value, list):
        raise ProjectionError(f"{key} is a {type(value).__name__}, not a list")
    return value


def text(parent: Any, key: str, default: str = "") -> str:
    """`parent[key]` as a string (valid UTF-8: it may become a label value); numbers and booleans
    are rendered, objects rejected."""
    value = _get(parent, key)
    if value is None:
        return default
    if isinstance(value, (dict, list)):
        raise ProjectionError(f"{key} is a {type(value).__name__}, not a string")
    if isinstance(value, bool):
        return "true" if value else "false"
    return valid_utf8(str(value))


# Every integer the projections read is a count or a size; above this it is not one (float64
# stops being exact) and would be exported as nonsense such as 1e308.
MAX_COUNT = 2**53


def integer(parent: Any, key: str) -> int | None:
    """`parent[key]` as a non-negative int; None when absent. Strings of digits are accepted
    (annotations). A negative or absurd value makes the object malformed (skipped with a warning)."""
    value = _get(parent, key)
    if value is None:
        return None
    if isinstance(value, bool):
        raise ProjectionError(f"{key} is a boolean, not an integer")
    if isinstance(value, int):
        number = value
    elif isinstance(value, float) and value.is_integer():
        number = int(value)
    elif isinstance(value, str):
        try:
            number = int(value.strip())
        except ValueError:
            raise ProjectionError(f"{key} is {value[:40]!r}, not an integer") from None
    else:
        raise ProjectionError(f"{key} is a {type(value).__name__}, not an integer")
    if not 0 <= number <= MAX_COUNT:
        raise ProjectionError(f"{key} is {str(value)[:40]}, not a count")
    return number


def flag(parent: Any, key: str) -> bool:
    """`parent[key]` as a bool; False when absent. "true"/"false" strings are accepted."""
    value = _get(parent, key)
    if value is None:
        return False
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.lower() in ("true", "false"):
        return value.lower() == "true"
    raise ProjectionError(f"{key} is {value!r}, not a boolean")


def strings(parent: Any, key: str) -> tuple[str, ...]:
    """`parent[key]` as a tuple of strings (a list of scalars)."""
    return tuple(text({"v": v}, "v") for v in items(parent, key) if v is not None)


def timestamp(parent: Any, key: str) -> float | None:
    """An RFC 3339 time (`metav1.Time` or `MicroTime`) as unix seconds; None when absent."""
    value = _get(parent, key)
    if value in (None, ""):
        return None
    if not isinstance(value, str):
        raise ProjectionError(f"{key} is a {type(value).__name__}, not a time")
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise ProjectionError(f"{key} is {value[:40]!r}, not an RFC 3339 time") from None
    if parsed.tzinfo is None:  # the API server always sends UTC; be lenient with a missing zone
        return parsed.replace(tzinfo=UTC).timestamp()
    return parsed.timestamp()


def name_of(raw: Any) -> str:
    """metadata.name, required: an object without one cannot be stored."""
    name = text(obj(raw, "metadata"), "name")
    if not name:
        raise ProjectionError("metadata.name is missing")
    return name


def namespaced_key(raw: Any) -> str:
    """Store key "namespace/name" (just "name" for cluster-scoped objects)."""
    namespace = text(obj(raw, "metadata"), "namespace")
    name = name_of(raw)
    return f"{namespace}/{name}" if namespace else name


def uid_key(raw: Any) -> str:
    """Store key metadata.uid, falling back to namespace/name when the UID is missing."""
    uid = text(obj(raw, "metadata"), "uid")
    return uid or namespaced_key(raw)


def _get(parent: Any, key: str) -> Any:
    if not isinstance(parent, dict):
        raise ProjectionError(f"parent of {key} is a {type(parent).__name__}, not an object")
    return parent.get(key)

