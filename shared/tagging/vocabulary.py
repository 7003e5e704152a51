"""A caller's own vocabulary for one request (`vocabulary` on create, batch items and the
sync API), laid over the deployment's taxonomy (TAXONOMY_FILE) for the fields it names.

    {"vision.characters": ["女性", "男性"],
     "business.product": {"tags": ["口红", "粉底"], "closed": true}}

A list is an open field: its tags are preferred and anything else the model says is kept,
marked `free`. A closed field is sent to Gemini as an enum and anything else is dropped.
The vocabulary is part of the result-cache key and of `prompt_version` (`fingerprint`).
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

from shared.tagging.result import SUBCATEGORIES, Tag
from shared.tagging.taxonomy import LANGUAGES, Field, Taxonomy, key_of

MAX_FIELDS = 50
MAX_TAGS_PER_FIELD = 300
MAX_TAG_CHARS = 40


class VocabularyError(ValueError):
    """The message names the field (`vocabulary.<dimension.field>`) and the reason."""


def parse(raw: Any) -> dict[str, dict[str, Any]]:
    """The canonical form `{"dim.field": {"tags": [...], "closed": bool}}` (sorted keys,
    tags trimmed, in the caller's order), or VocabularyError for the first mistake."""
    if not isinstance(raw, dict):
        raise VocabularyError("must be an object of dimension.field → tags")
    if len(raw) > MAX_FIELDS:
        raise VocabularyError(f"{len(raw)} fields, at most {MAX_FIELDS}")
    parsed: dict[str, dict[str, Any]] = {}
    for name in sorted(raw, key=str):
        where = f"vocabulary.{str(name)[:60]}"
        dimension, _, field = str(name).partition(".")
        if field not in SUBCATEGORIES.get(dimension, ()):
            known = ", ".join(f"{d}.{f}" for d, fs in SUBCATEGORIES.items() for f in fs)
            raise VocabularyError(f"{where}: unknown dimension.field (known: {known})")
        spec = raw[name]
        closed = False
        if isinstance(spec, dict):
            extra = set(spec) - {"tags", "closed"}
            if extra:
                raise VocabularyError(f"{where}: unknown key {sorted(extra)[0]!r} "
                                      "(allowed: tags, closed)")
            closed = spec.get("closed", False)
            if not isinstance(closed, bool):
                raise VocabularyError(f"{where}.closed: must be true or false")
            spec = spec.get("tags")
        parsed[name] = {"tags": _tags(where, spec), "closed": closed}
    return parsed


def _tags(where: str, tags: Any) -> list[str]:
    if not isinstance(tags, list) or not tags:
        raise VocabularyError(f"{where}: must be a non-empty list of tags")
    if len(tags) > MAX_TAGS_PER_FIELD:
        raise VocabularyError(f"{where}: {len(tags)} tags, at most {MAX_TAGS_PER_FIELD}")
    seen: dict[str, str] = {}
    for index, tag in enumerate(tags):
        if not isinstance(tag, str) or not tag.strip():
            raise VocabularyError(f"{where}[{index}]: must be a non-empty string")
        if len(tag.strip()) > MAX_TAG_CHARS:
            raise VocabularyError(f"{where}[{index}]: longer than {MAX_TAG_CHARS} characters")
        key = key_of(tag)
        if key in seen:
            raise VocabularyError(f"{where}[{index}]: {tag.strip()!r} duplicates "
                                  f"{seen[key]!r}")
        seen[key] = tag.strip()
    return list(seen.values())


def fingerprint(vocabulary: dict[str, dict[str, Any]] | None) -> str:
    """'' without a vocabulary, else `-v` + 6 hex of its canonical form."""
    if not vocabulary:
        return ""
    text = json.dumps(vocabulary, ensure_ascii=False, sort_keys=True, separators=(",", ":"))
    return "-v" + hashlib.sha256(text.encode()).hexdigest()[:6]


def overlay(taxonomy: Taxonomy, vocabulary: dict[str, dict[str, Any]] | None) -> Taxonomy:
    """The deployment's taxonomy with the request's fields in place of its own. The
    caller's tags are canonical in every language (they are the caller's words)."""
    if not vocabulary:
        return taxonomy
    fields = dict(taxonomy.fields)
    for name, spec in vocabulary.items():
        dimension, _, field = name.partition(".")
        tags = tuple(spec["tags"])
        mapping = {key_of(tag): tag for tag in tags}
        fields[(dimension, field)] = Field(
            closed=spec["closed"], canonical={language: tags for language in LANGUAGES},
            synonyms={language: mapping for language in LANGUAGES})
    return Taxonomy(fields)


def apply(dimensions: dict[str, dict[str, list[Tag]]],
          vocabulary: dict[str, dict[str, Any]] | None,
          language: str) -> dict[str, dict[str, list[Tag]]]:
    """A tagger's tags through the request's vocabulary, for the fields it names only."""
    if not vocabulary:
        return dimensions
    named = overlay(Taxonomy({}), vocabulary)
    return {dim: {sub: named.normalise(dim, sub, language, tags)
                  if f"{dim}.{sub}" in vocabulary else tags
                  for sub, tags in fields.items()}
            for dim, fields in dimensions.items()}
