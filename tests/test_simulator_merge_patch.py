"""The simulator's JSON merge patch against RFC 7396's own examples.

Appendix A of https://www.rfc-editor.org/rfc/rfc7396#appendix-A, every row, written as the RFC
writes them (JSON text), so a row can be checked against the RFC by eye.
"""

from __future__ import annotations

import copy
import json

import pytest

from terway_simulator.merge_patch import merge_patch

# (ORIGINAL, PATCH, RESULT), in the RFC's order.
APPENDIX_A = [
    ('{"a":"b"}', '{"a":"c"}', '{"a":"c"}'),
    ('{"a":"b"}', '{"b":"c"}', '{"a":"b", "b":"c"}'),
    ('{"a":"b"}', '{"a":null}', '{}'),
    ('{"a":"b", "b":"c"}', '{"a":null}', '{"b":"c"}'),
    ('{"a":["b"]}', '{"a":"c"}', '{"a":"c"}'),
    ('{"a":"c"}', '{"a":["b"]}', '{"a":["b"]}'),
    ('{"a": {"b": "c"}}', '{"a": {"b": "d", "c": null}}', '{"a": {"b": "d"}}'),
    ('{"a": [{"b":"c"}]}', '{"a": [1]}', '{"a": [1]}'),
    ('["a","b"]', '["c","d"]', '["c","d"]'),
    ('{"a":"b"}', '["c"]', '["c"]'),
    ('{"a":"foo"}', 'null', 'null'),
    ('{"a":"foo"}', '"bar"', '"bar"'),
    ('{"e":null}', '{"a":1}', '{"e":null, "a":1}'),
    ('[1,2]', '{"a":"b", "c":null}', '{"a":"b"}'),
    ('{}', '{"a":{"bb":{"ccc":null}}}', '{"a":{"bb":{}}}'),
]


def test_the_table_has_every_row_of_appendix_a():
    assert len(APPENDIX_A) == 15


@pytest.mark.parametrize(("original", "patch", "result"), APPENDIX_A,
                         ids=[f"row{i}" for i in range(1, len(APPENDIX_A) + 1)])
def test_rfc7396_appendix_a(original, patch, result):
    assert merge_patch(json.loads(original), json.loads(patch)) == json.loads(result)


@pytest.mark.parametrize(("original", "patch", "result"), APPENDIX_A,
                         ids=[f"row{i}" for i in range(1, len(APPENDIX_A) + 1)])
def test_neither_argument_is_modified(original, patch, result):
    # The World's mappings a step patches may be shared; the patch is the scenario file's own data.
    target, change = json.loads(original), json.loads(patch)
    target_before, change_before = copy.deepcopy(target), copy.deepcopy(change)
    merge_patch(target, change)
    assert (target, change) == (target_before, change_before)
