"""The controlled vocabulary: canonical tags per dimension and field, each with synonyms,
in Chinese and English, so the same thing is one tag everywhere (女生/女人 → 女性) and
search facets count it once.

The default ships as `taxonomy.json` (short-video marketing); `TAXONOMY_FILE` replaces it.
A field marked `"closed": true` only takes its canonical tags: the response schema sends
them as an enum and anything else is dropped. In open fields a tag that is not in the
vocabulary is kept and marked `free`.
"""

from __future__ import annotations

import json
import unicodedata
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

from shared.tagging.result import SUBCATEGORIES, Tag

DEFAULT_FILE = Path(__file__).resolve().parent / "taxonomy.json"
LANGUAGES = ("zh", "en")


def key_of(word: str) -> str:
    """What makes two tags the same: Unicode-normalised (full-width → ASCII), trimmed,
    case-folded."""
    return unicodedata.normalize("NFKC", word).strip().casefold()


class TaxonomyError(ValueError):
    """A taxonomy file that cannot be used; the message names the entry."""


@dataclass(frozen=True)
class Field:
    closed: bool
    canonical: dict[str, tuple[str, ...]]
    """language → canonical tags, in file order."""
    synonyms: dict[str, dict[str, str]]
    """language → lower-cased tag or synonym → canonical tag."""


class Taxonomy:
    def __init__(self, fields: dict[tuple[str, str], Field]) -> None:
        self.fields = fields

    def enum(self, dimension: str, field: str, language: str) -> list[str] | None:
        """The allowed tags of a closed field (None: free text)."""
        entry = self.fields.get((dimension, field))
        if entry is None or not entry.closed:
            return None
        return list(entry.canonical.get(language, ()))

    def normalise(self, dimension: str, field: str, language: str,
                  tags: list[Tag]) -> list[Tag]:
        """Synonyms become their canonical tag (best confidence kept), unknown tags are
        marked free, or dropped in a closed field."""
        entry = self.fields.get((dimension, field))
        if entry is None:
            return [tag.model_copy(update={"free": True}) for tag in tags]
        mapping = entry.synonyms.get(language, {})
        best: dict[str, Tag] = {}
        for tag in tags:
            canonical = mapping.get(key_of(tag.tag))
            if canonical is None and entry.closed:
                continue
            name = canonical or tag.tag
            candidate = tag.model_copy(update={"tag": name, "free": canonical is None})
            if name not in best or best[name].confidence < candidate.confidence:
                best[name] = candidate
        return sorted(best.values(), key=lambda tag: -tag.confidence)


def load(path: Path | None = None) -> Taxonomy:
    """Read and check a taxonomy file; TaxonomyError names the entry that is wrong."""
    source = path or DEFAULT_FILE
    try:
        data = json.loads(Path(source).read_text(encoding="utf-8"))
    except (OSError, ValueError) as error:
        raise TaxonomyError(f"{source}: cannot be read as JSON ({error})") from None
    if not isinstance(data, dict) or not data:
        raise TaxonomyError(f"{source}: empty (expected dimensions → fields → languages)")
    fields: dict[tuple[str, str], Field] = {}
    for dimension, block in data.items():
        if dimension not in SUBCATEGORIES:
            raise TaxonomyError(f"{source}: unknown dimension {dimension!r} "
                                f"(known: {', '.join(SUBCATEGORIES)})")
        if not isinstance(block, dict) or not block:
            raise TaxonomyError(f"{source}: {dimension}: empty")
        for field, spec in block.items():
            if field not in SUBCATEGORIES[dimension]:
                raise TaxonomyError(f"{source}: {dimension}.{field}: unknown field (known: "
                                    f"{', '.join(SUBCATEGORIES[dimension])})")
            fields[(dimension, field)] = _field(f"{source}: {dimension}.{field}", spec)
    return Taxonomy(fields)


def _field(where: str, spec: object) -> Field:
    if not isinstance(spec, dict):
        raise TaxonomyError(f"{where}: must be an object of languages")
    closed = spec.get("closed", False)
    if not isinstance(closed, bool):
        raise TaxonomyError(f"{where}: closed must be true or false")
    canonical: dict[str, tuple[str, ...]] = {}
    synonyms: dict[str, dict[str, str]] = {}
    for language in LANGUAGES:
        entries = spec.get(language)
        if entries is None:
            continue
        if not isinstance(entries, dict) or not entries:
            raise TaxonomyError(f"{where}.{language}: empty (canonical tag → synonyms)")
        mapping: dict[str, str] = {}
        for tag, others in entries.items():
            if not tag.strip() or not isinstance(others, list) or not all(
                    isinstance(other, str) and other.strip() for other in others):
                raise TaxonomyError(f"{where}.{language}.{tag!r}: synonyms must be a list "
                                    "of non-empty strings")
            for word in (tag, *others):
                key = key_of(word)
                if key in mapping and mapping[key] != tag:
                    raise TaxonomyError(f"{where}.{language}: {word!r} is a synonym of both "
                                        f"{mapping[key]!r} and {tag!r}")
                mapping[key] = tag
        canonical[language] = tuple(entries)
        synonyms[language] = mapping
    if not canonical:
        raise TaxonomyError(f"{where}: no language (zh, en)")
    unknown = set(spec) - {"closed", *LANGUAGES}
    if unknown:
        raise TaxonomyError(f"{where}: unknown key {sorted(unknown)[0]!r}")
    return Field(closed, canonical, synonyms)


@lru_cache(maxsize=4)
def cached(path: str = "") -> Taxonomy:
    """One parsed taxonomy per file per process."""
    return load(Path(path) if path else None)


def fingerprint(path: str = "") -> str:
    """6 hex of the vocabulary file: part of `prompt_version`, so cached results made with
    another vocabulary are not reused."""
    import hashlib

    return hashlib.sha256(Path(path or DEFAULT_FILE).read_bytes()).hexdigest()[:6]
