"""Stream's query filters and sorts (``filter_conditions``, ``sort``) for the double.

A filter is compiled once (so a bad filter fails even when nothing would match) into a
predicate over a *document*: a flat dict of a record's built-in fields and custom data.
Supported: plain values (``{"type": "messaging"}`` means ``$eq``), ``$eq $ne $in $nin
$exists $gt $gte $lt $lte $contains`` and ``$and $or $nor``. Built-in fields accept only the
operators Stream documents for them (e.g. ``frozen``: ``$eq``; ``members``: ``$in``); custom
fields accept all of them. Anything else is a ``FilterError`` (the double answers 400, code
4, like Stream). Stream operators the double does not model (``$autocomplete``, ``$q``) and
built-in fields it does not model (``joined``, ``muted``...) fail loudly for the same reason.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from tests.stream_double.model import parse_time

Document = Mapping[str, Any]
Predicate = Callable[[Document], bool]

COMPARISONS = frozenset({"$gt", "$gte", "$lt", "$lte"})
OPERATORS = frozenset({"$eq", "$ne", "$in", "$nin", "$exists", "$contains"}) | COMPARISONS
UNMODELLED_OPERATORS = frozenset({"$autocomplete", "$q"})
LOGICAL = frozenset({"$and", "$or", "$nor"})


class FilterError(ValueError):
    """A filter or sort Stream would refuse (or one the double does not model)."""


@dataclass(frozen=True)
class FieldSpec:
    """What one query endpoint knows about its records' fields.

    ``builtin`` maps each built-in field to the operators Stream allows on it; any other
    field is custom data and accepts every operator. ``times`` are built-ins holding
    datetimes (filter values for them are RFC 3339 strings). ``unmodelled`` are Stream
    built-ins the double cannot answer for. ``sortable`` are the fields ``sort`` may use.
    """

    builtin: Mapping[str, frozenset[str]]
    sortable: frozenset[str]
    times: frozenset[str] = frozenset()
    unmodelled: frozenset[str] = frozenset()
    default_sort: Sequence[tuple[str, int]] = field(default_factory=tuple)


def compile_filter(conditions: Any, spec: FieldSpec) -> Predicate:
    """A predicate for ``conditions`` (a JSON object), or ``FilterError``."""
    if not isinstance(conditions, dict):
        raise FilterError("filter_conditions must be an object")
    parts = [_compile_entry(key, value, spec) for key, value in conditions.items()]
    return lambda doc: all(part(doc) for part in parts)


def _compile_entry(key: str, value: Any, spec: FieldSpec) -> Predicate:
    if key in LOGICAL:
        if not isinstance(value, list) or not value:
            raise FilterError(f"{key} takes a non-empty list of filters")
        subs = [compile_filter(sub, spec) for sub in value]
        if key == "$and":
            return lambda doc: all(sub(doc) for sub in subs)
        if key == "$or":
            return lambda doc: any(sub(doc) for sub in subs)
        return lambda doc: not any(sub(doc) for sub in subs)
    if key.startswith("$"):
        raise FilterError(f"unknown operator {key!r} at the top level of the filter")
    if key in spec.unmodelled:
        raise FilterError(f"field {key!r} is not modelled by the stream double")
    allowed = spec.builtin.get(key, OPERATORS)
    if isinstance(value, dict) and any(k.startswith("$") for k in value):
        conditions = list(value.items())
    else:
        conditions = [("$eq", value)]
    parts = []
    for op, operand in conditions:
        if op in UNMODELLED_OPERATORS:
            raise FilterError(f"operator {op} is not modelled by the stream double")
        if op not in OPERATORS:
            raise FilterError(f"unknown operator {op!r} on field {key!r}")
        if op not in allowed:
            raise FilterError(f"operator {op} is not supported for field {key!r}")
        parts.append(_compile_op(key, op, operand, is_time=key in spec.times))
    return lambda doc: all(part(doc) for part in parts)


def _compile_op(key: str, op: str, operand: Any, *, is_time: bool) -> Predicate:
    if op in ("$in", "$nin"):
        if not isinstance(operand, list):
            raise FilterError(f"{op} on field {key!r} takes a list")
        options = [_time_operand(key, o) if is_time else o for o in operand]
        if op == "$in":
            return lambda doc: key in doc and _is_in(doc[key], options)
        return lambda doc: not (key in doc and _is_in(doc[key], options))
    if op == "$exists":
        if not isinstance(operand, bool):
            raise FilterError(f"$exists on field {key!r} takes true or false")
        return lambda doc: (key in doc) == operand
    if is_time:
        operand = _time_operand(key, operand)
    if op == "$eq":
        return lambda doc: key in doc and _equal(doc[key], operand)
    if op == "$ne":
        return lambda doc: not (key in doc and _equal(doc[key], operand))
    if op == "$contains":
        return lambda doc: (
            isinstance(doc.get(key), list | frozenset)
            and any(_same(item, operand) for item in doc[key])
        )
    return lambda doc: key in doc and _compare(op, doc[key], operand)


def _time_operand(key: str, operand: Any) -> datetime:
    try:
        return parse_time(operand)
    except ValueError as exc:
        raise FilterError(f"field {key!r}: {exc}") from exc


def _same(a: Any, b: Any) -> bool:
    """Typed equality: ``True`` is not ``1`` and ``"1"`` is not ``1`` (Stream is typed)."""
    if isinstance(a, bool) or isinstance(b, bool):
        return isinstance(a, bool) and isinstance(b, bool) and a == b
    if isinstance(a, int | float) and isinstance(b, int | float):
        return a == b
    return type(a) is type(b) and bool(a == b)


def _equal(value: Any, operand: Any) -> bool:
    # A set-valued field (members) equals a list with exactly the same elements.
    if isinstance(value, frozenset):
        return isinstance(operand, list) and value == frozenset(operand)
    return _same(value, operand)


def _is_in(value: Any, options: list[Any]) -> bool:
    # A set-valued field (members) is "in" when any of its elements is.
    if isinstance(value, frozenset):
        return any(_same(item, option) for item in value for option in options)
    return any(_same(value, option) for option in options)


def _compare(op: str, value: Any, operand: Any) -> bool:
    comparable = (
        (isinstance(value, int | float) and isinstance(operand, int | float))
        or (isinstance(value, str) and isinstance(operand, str))
        or (isinstance(value, datetime) and isinstance(operand, datetime))
    )
    if not comparable or isinstance(value, bool) or isinstance(operand, bool):
        return False
    if op == "$gt":
        return bool(value > operand)
    if op == "$gte":
        return bool(value >= operand)
    if op == "$lt":
        return bool(value < operand)
    return bool(value <= operand)


def parse_sort(raw: Any, spec: FieldSpec) -> list[tuple[str, int]]:
    """The SDK's ``sort`` (``[{"field", "direction"}]``) checked, or the endpoint's default."""
    if raw is None or raw == []:
        return list(spec.default_sort)
    if not isinstance(raw, list):
        raise FilterError("sort must be a list of {field, direction}")
    keys = []
    for item in raw:
        if not isinstance(item, dict) or "field" not in item:
            raise FilterError("sort must be a list of {field, direction}")
        name, direction = item["field"], item.get("direction", 1)
        if name not in spec.sortable:
            raise FilterError(f"sort by {name!r} is not supported (stream double)")
        if direction not in (1, -1) or isinstance(direction, bool):
            raise FilterError(f"sort direction for {name!r} must be 1 or -1")
        keys.append((str(name), int(direction)))
    return keys


def sort_documents(
    docs: list[dict[str, Any]], keys: list[tuple[str, int]], tiebreak: str
) -> list[dict[str, Any]]:
    """``docs`` ordered by ``keys``, then by ``tiebreak`` ascending (a total, stable order)."""
    ordered = sorted(docs, key=lambda doc: doc[tiebreak])
    for name, direction in reversed(keys):
        ordered.sort(key=lambda doc: doc[name], reverse=direction == -1)
    return ordered
