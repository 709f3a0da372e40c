"""Request-parameter and paging helpers for the simulated RPC actions (pure functions).

RPC parameters arrive flat: lists as `Name.1..N` (RepeatList), tags as `Tag.N.Key/Value`,
some ID lists as a JSON-array string (`SecurityGroupIds`, `InstanceIds`). Paging comes in
two styles: `PageNumber`/`PageSize` (TotalCount tells the client when to stop) and
`MaxResults`/`NextToken` (an empty or absent NextToken ends the listing: "If the response does
not include NextToken, the current page of results is the last page", DescribeSecurityGroups,
https://alibabacloud.com/help/doc-detail/25556.htm; Terway stops on `NextToken == ""` too,
pkg/aliyun/client/ecs.go at v1.17.5).

A page size outside what the action's reference documents is either brought into range, where
the reference says so (DescribeNetworkInterfaces: "If this parameter is set to a value greater
than 500, the default value is 500"), or refused with InvalidParameter, where the reference only
gives a range (the code the real API answers then is **unverified**).
"""

from __future__ import annotations

import base64
import json
import re
import time
from collections.abc import Sequence
from typing import Any, TypeVar

from .cloud_http import ApiError, invalid_parameter

T = TypeVar("T")


def iso_time(unix_seconds: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(unix_seconds))


def repeat_list(params: dict[str, str], name: str) -> list[str]:
    """Values of `name.1`, `name.2`, ... in index order (RepeatList parameters)."""
    pattern = re.compile(re.escape(name) + r"\.(\d+)$")
    found = sorted((int(m.group(1)), v) for k, v in params.items() if (m := pattern.match(k)))
    return [v for _, v in found]


def tag_filters(params: dict[str, str]) -> list[tuple[str, str | None]]:
    """`Tag.N.Key` / `Tag.N.Value` pairs; a missing Value matches any value of the key."""
    keys = {int(m.group(1)): v for k, v in params.items() if (m := re.match(r"Tag\.(\d+)\.Key$", k))}
    return [(key, params.get(f"Tag.{n}.Value")) for n, key in sorted(keys.items())]


def json_list(params: dict[str, str], name: str, limit: int) -> list[str] | None:
    """A JSON-array string parameter such as SecurityGroupIds='["sg-a","sg-b"]'; None when absent."""
    raw = params.get(name)
    if raw is None or raw == "":
        return None
    try:
        value = json.loads(raw)
    except json.JSONDecodeError:
        raise invalid_parameter(name, raw) from None
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value) or len(value) > limit:
        raise invalid_parameter(name, raw)
    return value


def int_param(params: dict[str, str], name: str, default: int) -> int:
    raw = params.get(name)
    if raw is None or raw == "":
        return default
    try:
        return int(raw)
    except ValueError:
        raise invalid_parameter(name, raw) from None


def uses_token_paging(params: dict[str, str]) -> bool:
    return "MaxResults" in params or "NextToken" in params


def token_page(items: Sequence[T], params: dict[str, str], *, minimum: int, default: int,
               maximum: int, clamp: bool) -> tuple[Sequence[T], dict[str, Any]]:
    """One MaxResults/NextToken page and the response fields that describe it.

    With `clamp`, MaxResults below `minimum` (or unset) means `default` and above `maximum` means
    `maximum`, as DescribeNetworkInterfaces documents; without it, a value outside
    [minimum, maximum] is refused. NextToken is "" on the last page.
    """
    size = int_param(params, "MaxResults", default)
    if clamp:
        size = default if size < minimum else min(size, maximum)
    elif not minimum <= size <= maximum:
        raise out_of_range("MaxResults", size, minimum, maximum)
    start = decode_token(params.get("NextToken", ""))
    page = items[start:start + size]
    end = start + len(page)
    return page, {"NextToken": encode_token(end) if end < len(items) else "", "TotalCount": len(items)}


def number_page(items: Sequence[T], params: dict[str, str], *, default: int,
                maximum: int) -> tuple[Sequence[T], dict[str, Any]]:
    """One PageNumber/PageSize page. PageSize must be 1..`maximum` (the documented range) and
    PageNumber at least 1; anything else is refused with InvalidParameter."""
    number = int_param(params, "PageNumber", 1)
    if number < 1:
        raise out_of_range("PageNumber", number, 1, None)
    size = int_param(params, "PageSize", default)
    if not 1 <= size <= maximum:
        raise out_of_range("PageSize", size, 1, maximum)
    start = (number - 1) * size
    return items[start:start + size], {"TotalCount": len(items), "PageNumber": number, "PageSize": size}


def out_of_range(name: str, value: int, minimum: int, maximum: int | None) -> ApiError:
    bound = f"from {minimum} to {maximum}" if maximum is not None else f"at least {minimum}"
    return ApiError("InvalidParameter", message=(
        f"The specified parameter {name} ({value}) is not valid: the API reference documents values {bound}."))


def encode_token(offset: int) -> str:
    return base64.urlsafe_b64encode(f"simulator-offset:{offset}".encode()).decode().rstrip("=")


def decode_token(token: str) -> int:
    if not token:
        return 0
    try:
        text = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)).decode()
        prefix, _, offset = text.partition(":")
        if prefix != "simulator-offset":
            raise ValueError(text)
        return int(offset)
    except ValueError:
        raise ApiError("InvalidParameter", message="The specified parameter NextToken is not valid.") from None


def matches(params: dict[str, str], name: str, value: str) -> bool:
    """An optional equality filter: absent or empty matches everything."""
    wanted = params.get(name)
    return not wanted or wanted == value


def any_page(items: Sequence[T], params: dict[str, str], *, token: tuple[int, int, int], clamp: bool,
             numbered: tuple[int, int]) -> tuple[Sequence[T], dict[str, Any]]:
    """Token paging when the request uses MaxResults/NextToken, else PageNumber/PageSize.

    `token` is (minimum, default, maximum) MaxResults, `clamp` as in token_page; `numbered` is
    (default, maximum) PageSize.
    """
    if uses_token_paging(params):
        minimum, default, maximum = token
        return token_page(items, params, minimum=minimum, default=default, maximum=maximum, clamp=clamp)
    page, paging = number_page(items, params, default=numbered[0], maximum=numbered[1])
    return page, {**paging, "NextToken": ""}
