"""How a pydantic validation error is told to a caller: the first problem as (field,
reason), the field named the way the caller sent it. The API's 400 message is
`field: reason`; a batch item's error carries both apart."""

from __future__ import annotations

from typing import Any

from pydantic import ValidationError


def validation_problem(error: ValidationError) -> tuple[str, str]:
    """The first problem of `error` as (field, reason)."""
    problems: dict[str, list[dict[str, Any]]] = {}
    for item in error.errors():
        field = str(item["loc"][0]) if item["loc"] else "body"
        problems.setdefault(field, []).append(item)
    unknown = [field[:64] for field, items in problems.items()
               if items[0]["type"] == "extra_forbidden"]
    if unknown:  # every one named: the caller fixes them at once
        kind = "parameter" if error.title.endswith("Query") else "field"
        return ", ".join(unknown), f"unknown {kind}{'s' if len(unknown) > 1 else ''}"
    field, items = next(iter(problems.items()))
    if len(items) > 1 and all(item["type"].endswith("_type") for item in items):
        got = type(items[0]["input"]).__name__
        return field, f"wrong type ({got}); expected {' or '.join(_expected(items))}"
    # of a union's branches, the one the type matched says what is wrong
    item = next((item for item in items if not item["type"].endswith("_type")), items[0])
    if item["type"] == "missing":
        return field, "is required"
    message = item["msg"].removeprefix("Value error, ")
    return field, f"{message[0].lower()}{message[1:]}"


def _expected(items: list[dict[str, Any]]) -> list[str]:
    names = {"int_type": "an integer", "string_type": "a string", "list_type": "a list"}
    return [names.get(item["type"], item["type"]) for item in items]
