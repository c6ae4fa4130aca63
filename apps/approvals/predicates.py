"""Argument predicates of a policy: small, declarative, stored as JSON, explained in words.

A condition is ``{"path": "to", "op": "outside_domains"}``, ``{"path": "env", "op": "eq",
"value": "prod"}`` or ``{"path": "amount", "op": "gt", "value": 1000}``. ``path`` is dotted
into the tool's arguments (``payload.items.0.price``); ``*`` fans out over a list or object
(``recipients.*.email``). When a path reaches a list, comparisons hold if any element holds.
Evaluation never raises on odd arguments: a value of the wrong type simply does not match.

Pure functions, no database: the workspace's domains are passed in.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from typing import Any
from urllib.parse import urlsplit

OPERATORS: tuple[str, ...] = (
    "eq",
    "ne",
    "gt",
    "gte",
    "lt",
    "lte",
    "in",
    "not_in",
    "contains",
    "matches",
    "exists",
    "absent",
    "outside_domains",
)
_NEEDS_VALUE = {"eq", "ne", "gt", "gte", "lt", "lte", "in", "not_in", "contains", "matches"}
_NUMERIC = {"gt", "gte", "lt", "lte"}
_PATHLESS = {"outside_domains"}  # without a path: every address anywhere in the arguments
MAX_CONDITIONS = 20

EMAIL_RE = re.compile(
    r"[A-Za-z0-9.!#$%&'*+/=?^_`{|}~-]+@([A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?(?:\.[A-Za-z0-9-]+)+)"
)
URL_RE = re.compile(r"\bhttps?://[^\s\"'<>]+", re.IGNORECASE)
_MISSING = object()


class InvalidCondition(ValueError):
    pass


@dataclass(frozen=True)
class ConditionResult:
    matched: bool
    explanation: str


def validate_conditions(conditions: Any) -> list[dict[str, Any]]:
    """Normalise and check a list of conditions; raise InvalidCondition saying what is wrong."""
    if conditions in (None, ""):
        return []
    if not isinstance(conditions, list):
        raise InvalidCondition("Conditions are a list of objects.")
    if len(conditions) > MAX_CONDITIONS:
        raise InvalidCondition(f"At most {MAX_CONDITIONS} conditions.")
    out: list[dict[str, Any]] = []
    for index, condition in enumerate(conditions):
        where = f"condition {index + 1}"
        if not isinstance(condition, dict):
            raise InvalidCondition(f"{where}: an object with path, op and value.")
        unknown = set(condition) - {"path", "op", "value"}
        if unknown:
            raise InvalidCondition(f"{where}: unknown keys {sorted(unknown)}.")
        op = condition.get("op")
        if op not in OPERATORS:
            raise InvalidCondition(f"{where}: op must be one of {', '.join(OPERATORS)}.")
        path = condition.get("path", "")
        if not isinstance(path, str) or (not path and op not in _PATHLESS):
            raise InvalidCondition(f"{where}: path names an argument (dotted, e.g. 'payload.amount').")
        if path and any(not part for part in path.split(".")):
            raise InvalidCondition(f"{where}: path {path!r} has an empty segment.")
        normalised: dict[str, Any] = {"path": path, "op": op}
        if op in _NEEDS_VALUE:
            if "value" not in condition:
                raise InvalidCondition(f"{where}: {op} needs a value.")
            value = condition["value"]
            if op in _NUMERIC and _number(value) is None:
                raise InvalidCondition(f"{where}: {op} compares numbers; {value!r} is not one.")
            if op in {"in", "not_in"} and not isinstance(value, list):
                raise InvalidCondition(f"{where}: {op} needs a list of values.")
            if op == "matches":
                if not isinstance(value, str):
                    raise InvalidCondition(f"{where}: matches needs a regular expression.")
                try:
                    re.compile(value)
                except re.error as exc:
                    raise InvalidCondition(f"{where}: invalid regular expression: {exc}.") from None
            normalised["value"] = value
        elif op == "outside_domains" and "value" in condition:
            value = condition["value"]
            if not isinstance(value, list) or not all(isinstance(d, str) for d in value):
                raise InvalidCondition(f"{where}: outside_domains takes an optional list of extra inside domains.")
            normalised["value"] = [d.strip().lower().lstrip("@") for d in value if d.strip()]
        elif "value" in condition:
            raise InvalidCondition(f"{where}: {op} takes no value.")
        out.append(normalised)
    return out


def evaluate(
    conditions: Sequence[dict[str, Any]], arguments: dict[str, Any], *, workspace_domains: Sequence[str]
) -> tuple[bool, list[ConditionResult]]:
    """Whether every condition holds, with one explanation per condition evaluated (it stops
    at the first that fails)."""
    results: list[ConditionResult] = []
    for condition in conditions:
        result = evaluate_condition(condition, arguments, workspace_domains=workspace_domains)
        results.append(result)
        if not result.matched:
            return False, results
    return True, results


def evaluate_condition(
    condition: dict[str, Any], arguments: dict[str, Any], *, workspace_domains: Sequence[str]
) -> ConditionResult:
    op = condition["op"]
    path = condition.get("path", "")
    expected: Any = condition.get("value")
    label = f"arguments.{path}" if path else "the arguments"
    values = list(resolve(arguments, path)) if path else [arguments]
    found = [v for v in values if v is not _MISSING]

    if op == "exists":
        return ConditionResult(bool(found), f"{label} {'is present' if found else 'is missing'}")
    if op == "absent":
        return ConditionResult(not found, f"{label} {'is missing' if not found else 'is present'}")
    if op == "outside_domains":
        inside = [d.lower() for d in workspace_domains] + list(expected or [])
        addresses = sorted({a for v in found for a in email_addresses(v)})
        outside = [a for a in addresses if not domain_inside(a.rsplit("@", 1)[1], inside)]
        shown = ", ".join(inside) or "none configured"
        if outside:
            return ConditionResult(True, f"{label}: {', '.join(outside)} outside the workspace's domains ({shown})")
        if not addresses:
            return ConditionResult(False, f"{label}: no email address")
        return ConditionResult(False, f"{label}: every address is inside the workspace's domains ({shown})")

    candidates = list(_candidates(found))
    shown_value = _short(found[0] if len(found) == 1 else found) if found else "missing"
    if op in _NUMERIC:
        limit = _number(expected)
        assert limit is not None  # validated on save
        symbol = {"gt": ">", "gte": ">=", "lt": "<", "lte": "<="}[op]
        for candidate in candidates:
            number = _number(candidate)
            if number is not None and _compare(op, number, limit):
                return ConditionResult(True, f"{label} = {_short(candidate)} {symbol} {_short(expected)}")
        return ConditionResult(False, f"{label} = {shown_value}, not {symbol} {_short(expected)}")
    if op == "eq":
        hit = any(_equal(c, expected) for c in [*found, *candidates])
        return ConditionResult(hit, f"{label} = {shown_value}{'' if hit else ', not'} == {_short(expected)}")
    if op == "ne":
        hit = not any(_equal(c, expected) for c in [*found, *candidates])
        return ConditionResult(hit, f"{label} = {shown_value}{'' if hit else ', not'} != {_short(expected)}")
    if op in {"in", "not_in"}:
        inside_list = any(_equal(c, e) for c in candidates for e in expected)
        hit = inside_list if op == "in" else not inside_list
        word = "in" if op == "in" else "not in"
        return ConditionResult(hit, f"{label} = {shown_value}{'' if hit else ', not'} {word} {_short(expected)}")
    if op == "contains":
        hit = any(_contains(value, expected) for value in found)
        return ConditionResult(hit, f"{label} {'contains' if hit else 'does not contain'} {_short(expected)}")
    if op == "matches":
        pattern = re.compile(expected)
        hit = any(isinstance(c, str) and pattern.search(c) for c in candidates)
        return ConditionResult(hit, f"{label} = {shown_value} {'matches' if hit else 'does not match'} /{expected}/")
    raise InvalidCondition(f"unknown op {op!r}")  # pragma: no cover  (validated on save)


def resolve(data: Any, path: str) -> Iterator[Any]:
    """Every value at ``path`` (several with ``*``); ``_MISSING`` where nothing is there."""
    if not path:
        yield data
        return
    head, _, rest = path.partition(".")
    if head == "*":
        if isinstance(data, dict):
            children = list(data.values())
        elif isinstance(data, list):
            children = list(data)
        else:
            yield _MISSING
            return
        if not children:
            yield _MISSING
        for child in children:
            yield from resolve(child, rest)
        return
    if isinstance(data, dict):
        child = data.get(head, _MISSING)
    elif isinstance(data, list) and head.lstrip("-").isdigit():
        index = int(head)
        child = data[index] if -len(data) <= index < len(data) else _MISSING
    else:
        child = _MISSING
    if child is _MISSING:
        yield _MISSING
        return
    yield from resolve(child, rest)


def email_addresses(value: Any) -> Iterator[str]:
    """Every email address anywhere in ``value`` (strings, lists, objects), lower-cased."""
    if isinstance(value, str):
        for match in EMAIL_RE.finditer(value):
            yield match.group(0).lower()
    elif isinstance(value, list):
        for item in value:
            yield from email_addresses(item)
    elif isinstance(value, dict):
        for item in value.values():
            yield from email_addresses(item)


def url_hosts(value: Any) -> Iterator[str]:
    if isinstance(value, str):
        for match in URL_RE.finditer(value):
            host = urlsplit(match.group(0)).hostname
            if host:
                yield host.lower()
    elif isinstance(value, list):
        for item in value:
            yield from url_hosts(item)
    elif isinstance(value, dict):
        for item in value.values():
            yield from url_hosts(item)


def domain_inside(domain: str, inside: Sequence[str]) -> bool:
    """``mail.acme.test`` is inside ``acme.test``; ``evilacme.test`` is not."""
    domain = domain.lower().rstrip(".")
    return any(domain == d or domain.endswith("." + d) for d in inside if d)


def reaches_outside(arguments: dict[str, Any], workspace_domains: Sequence[str]) -> list[str]:
    """Addresses and URL hosts in the arguments that are outside the workspace's domains."""
    inside = [d.lower() for d in workspace_domains]
    found = {a for a in email_addresses(arguments) if not domain_inside(a.rsplit("@", 1)[1], inside)}
    found |= {h for h in url_hosts(arguments) if not domain_inside(h, inside)}
    return sorted(found)


def _contains(value: Any, expected: Any) -> bool:
    if isinstance(value, str):
        return isinstance(expected, str) and expected in value
    if isinstance(value, list):
        return any(_equal(item, expected) for item in value)
    return False


def _candidates(values: list[Any]) -> Iterator[Any]:
    for value in values:
        if isinstance(value, list):
            yield from value
        else:
            yield value


def _number(value: Any) -> Decimal | None:
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, (int, float, Decimal)):
        try:
            number = Decimal(str(value))
        except InvalidOperation:
            return None
        return number if number.is_finite() else None
    if isinstance(value, str):
        try:
            number = Decimal(value.strip().replace(",", ""))
        except InvalidOperation:
            return None
        return number if number.is_finite() else None
    return None


def _compare(op: str, number: Decimal, limit: Decimal) -> bool:
    if op == "gt":
        return number > limit
    if op == "gte":
        return number >= limit
    if op == "lt":
        return number < limit
    return number <= limit


def _equal(a: Any, b: Any) -> bool:
    if isinstance(a, bool) or isinstance(b, bool):
        return a is b
    if isinstance(a, (int, float)) and isinstance(b, (int, float)):
        return Decimal(str(a)) == Decimal(str(b))
    return bool(a == b)


def _short(value: Any, limit: int = 80) -> str:
    text = json.dumps(value, default=str, ensure_ascii=False)
    return text if len(text) <= limit else text[: limit - 1] + "…"
