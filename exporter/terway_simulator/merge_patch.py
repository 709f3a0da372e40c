"""JSON merge patch (RFC 7396), the simulator's own.

Terway applies a node's dynamic config over `eni_conf` as a JSON merge patch, and scenario
steps (kube_steps.py) change the World by the same rule. The simulator is the specification the
exporter is tested against, so it implements the RFC itself rather than sharing the exporter's code.
"""

from __future__ import annotations

from typing import Any


def merge_patch(target: Any, patch: Any) -> Any:
    """`patch` applied to `target` as RFC 7396 section 2's MergePatch(Target, Patch) defines it.

    https://www.rfc-editor.org/rfc/rfc7396#section-2 : a patch that is an Object merges into the
    target member by member (the target becomes {} when it is not an Object), a member whose value
    is null removes that member, and a patch that is not an Object (array, string, number,
    true/false, null) replaces the target whole. A JSON Object is a dict here; an array (list) is
    not one, so arrays are replaced, never merged (the RFC's Appendix A: {"a":[{"b":"c"}]}).

    Neither argument is modified: the pseudocode edits Target in place, but the simulator's targets
    (the World's mappings) may be shared, so each level edited is a shallow copy.
    """
    if not isinstance(patch, dict):  # "else: return Patch"
        return patch
    # "if Target is not an Object: Target = {}  # Ignore the contents and set it to an empty Object"
    merged: dict[Any, Any] = dict(target) if isinstance(target, dict) else {}
    for name, value in patch.items():
        if value is None:  # "if Value is null: if Name exists in Target: remove the Name/Value pair"
            merged.pop(name, None)
        else:
            # "Target[Name] = MergePatch(Target[Name], Value)"; an absent Target[Name] is no Object,
            # so a nested patch object merges into {} and loses its own null members (Appendix A).
            merged[name] = merge_patch(merged.get(name), value)
    return merged
