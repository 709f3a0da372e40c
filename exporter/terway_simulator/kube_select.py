"""Label and field selectors, parsed and matched the way the Kubernetes API server does.

Only what a list or watch request can carry: label selectors with `=`, `==`, `!=`,
`in`, `notin`, `key` and `!key`; field selectors with `=`, `==` and `!=` over the
fields each resource supports (an unsupported field is a 400, as on a real server).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any


class SelectorError(ValueError):
    """A selector the API server would reject with 400 BadRequest; the message is the real one."""


@dataclass(frozen=True)
class Requirement:
    key: str
    op: str  # "=", "!=", "in", "notin", "exists", "!exists"
    values: frozenset[str] = frozenset()

    def matches(self, value: str | None) -> bool:
        if self.op == "exists":
            return value is not None
        if self.op == "!exists":
            return value is None
        if self.op in ("=", "in"):
            return value is not None and value in self.values
        # "!=" and "notin" also match objects that lack the key.
        return value is None or value not in self.values


@dataclass(frozen=True)
class Selector:
    requirements: tuple[Requirement, ...] = ()

    def __bool__(self) -> bool:
        return bool(self.requirements)

    def value_of(self, key: str) -> str | None:
        """The value an `=` requirement pins `key` to, for cheap pre-filtering; None if not pinned."""
        for req in self.requirements:
            if req.key == key and req.op in ("=", "in") and len(req.values) == 1:
                return next(iter(req.values))
        return None


_SET_RE = re.compile(r"^\s*(!?)\s*([A-Za-z0-9._/-]+)\s*(?:(notin|in)\s*\(([^)]*)\))?\s*$")
_EQ_RE = re.compile(r"^\s*([A-Za-z0-9._/-]+)\s*(==|=|!=)\s*([A-Za-z0-9._/:-]*)\s*$")


def _split_top_level(text: str) -> list[str]:
    """Split on commas that are not inside `in (...)` parentheses."""
    parts: list[str] = []
    current: list[str] = []
    depth = 0
    for char in text:
        if char == "(":
            depth += 1
        elif char == ")":
            depth -= 1
        if char == "," and depth == 0:
            parts.append("".join(current))
            current = []
        else:
            current.append(char)
    parts.append("".join(current))
    return [p for p in parts if p.strip()]


def parse_label_selector(text: str | None) -> Selector:
    if not text:
        return Selector()
    reqs = []
    for part in _split_top_level(text):
        eq = _EQ_RE.match(part)
        if eq:
            key, op, value = eq.groups()
            reqs.append(Requirement(key, "!=" if op == "!=" else "=", frozenset({value})))
            continue
        st = _SET_RE.match(part)
        if not st:
            raise SelectorError(f"unable to parse requirement: found '{part.strip()}', expected: in, notin, =, ==, !=")
        bang, key, op, values = st.groups()
        if op:
            reqs.append(Requirement(key, op, frozenset(v.strip() for v in values.split(",") if v.strip())))
        else:
            reqs.append(Requirement(key, "!exists" if bang else "exists"))
    return Selector(tuple(reqs))


def parse_field_selector(text: str | None, supported: frozenset[str], resource: str) -> Selector:
    """Field selector; `resource` names the resource in the real error text ("/v1, Resource=pods")."""
    if not text:
        return Selector()
    reqs = []
    for part in text.split(","):
        if not part.strip():
            continue
        eq = re.match(r"^\s*([A-Za-z0-9._]+)\s*(==|=|!=)\s*(.*?)\s*$", part)
        if not eq:
            raise SelectorError(f"invalid selector: '{text}'; can't understand '{part}'")
        key, op, value = eq.groups()
        if key not in supported:
            raise SelectorError(
                f'Unable to find "{resource}" that match label selector "", field selector "{text}": '
                f"field label not supported: {key}")
        reqs.append(Requirement(key, "!=" if op == "!=" else "=", frozenset({value})))
    return Selector(tuple(reqs))


def matches_labels(selector: Selector, obj: dict[str, Any]) -> bool:
    if not selector:
        return True
    labels = obj.get("metadata", {}).get("labels") or {}
    return all(req.matches(labels.get(req.key)) for req in selector.requirements)


def field_value(obj: dict[str, Any], path: str) -> str:
    """A field for field selectors: dotted path, missing values compare as "" (as the server does)."""
    if path == "source":  # events: `source` means source.component
        path = "source.component"
    value: Any = obj
    for part in path.split("."):
        value = value.get(part) if isinstance(value, dict) else None
        if value is None:
            return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def matches_fields(selector: Selector, obj: dict[str, Any]) -> bool:
    return all(req.matches(field_value(obj, req.key)) for req in selector.requirements)
