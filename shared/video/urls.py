"""The form of a URL the service accepts (a video, a callback): one regular expression,
used by the server to decide and published as the `pattern` of the OpenAPI document, so
the two cannot disagree. Explanations for a refused URL come from the same pieces.

The grammar (docs/decisions.md, "URL form"): scheme `http`/`https` in any case; a host that
is a DNS name (labels of letters, digits and inner hyphens, 1–63 characters, no empty
label, no trailing dot, the last label starting with a letter), a dotted IPv4 address
without leading zeros, or a bracketed IPv6 address; an optional port 1–65535; then
optionally a path, query or fragment of any characters but whitespace and controls.
Unicode host names are given in their IDNA form (`xn--…`): the pattern cannot say which
Unicode names are valid IDNA, so it takes none.
"""

from __future__ import annotations

import re

MAX_URL_LENGTH = 2048
"""Longest URL accepted for a video or a callback."""

SCHEME = r"[Hh][Tt][Tt][Pp][Ss]?"
LABEL = r"[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
TOP_LABEL = r"[A-Za-z](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
HOST_NAME = rf"(?:{LABEL}\.)*{TOP_LABEL}"
OCTET = r"(?:25[0-5]|2[0-4][0-9]|1[0-9]{2}|[1-9]?[0-9])"
IPV4 = rf"{OCTET}(?:\.{OCTET}){{3}}"
_H16 = r"[0-9A-Fa-f]{1,4}"
_LS32 = rf"(?:{_H16}:{_H16}|{IPV4})"
IPV6 = "(?:" + "|".join((  # RFC 3986, section 3.2.2
    rf"(?:{_H16}:){{6}}{_LS32}",
    rf"::(?:{_H16}:){{5}}{_LS32}",
    rf"(?:{_H16})?::(?:{_H16}:){{4}}{_LS32}",
    rf"(?:(?:{_H16}:){{0,1}}{_H16})?::(?:{_H16}:){{3}}{_LS32}",
    rf"(?:(?:{_H16}:){{0,2}}{_H16})?::(?:{_H16}:){{2}}{_LS32}",
    rf"(?:(?:{_H16}:){{0,3}}{_H16})?::{_H16}:{_LS32}",
    rf"(?:(?:{_H16}:){{0,4}}{_H16})?::{_LS32}",
    rf"(?:(?:{_H16}:){{0,5}}{_H16})?::{_H16}",
    rf"(?:(?:{_H16}:){{0,6}}{_H16})?::",
)) + ")"
HOST = rf"(?:{HOST_NAME}|{IPV4}|\[{IPV6}\])"
PORT = r"(?:[1-9][0-9]{0,3}|[1-5][0-9]{4}|6[0-4][0-9]{3}|65[0-4][0-9]{2}|655[0-2][0-9]|6553[0-5])"
URL_CHAR = ("!-~\u00a1-\u167f\u1681-\u1fff\u200b-\u2027\u202a-\u202e\u2030-\u205e"
            "\u2060-\u2fff\u3001-\ud7ff\ue000-\ufefe\uff00-\ufffd")
"""A character of the path, query or fragment: printable ASCII or any other character of
the Basic Multilingual Plane but whitespace (U+00A0, U+3000 …), controls, U+FEFF and
surrogates; the downloader percent-encodes what is not ASCII. Characters above U+FFFF
(emoji) are percent-encoded by the caller: in the pattern they would make generating
URLs from the document six times slower and confuse ECMA engines without the `u` flag."""
REST = rf"(?:[/?#][{URL_CHAR}]*)?"

URL_PATTERN = rf"^{SCHEME}://{HOST}(?::{PORT})?{REST}$"
"""The published pattern. Only what ECMA-262 (with the `u` flag, as JSON Schema validators
use it), Rust's and Python's regex engines read the same way: explicit classes, no
`\\d`/`\\s`/`\\w`, no look-around, `$` at the very end (the server matches the whole
string, as a JSON Schema validator's `$` does)."""

BUCKET = r"[a-z0-9](?:[a-z0-9_.-]{1,61})[a-z0-9]"
"""A GCS bucket name (3–63 lower-case letters, digits, `-`, `_`, `.`)."""
UPLOAD_ID = r"[0-9a-f]{32}"
"""An upload's id, as POST /api/v1/uploads gives it."""
VIDEO_URL_PATTERN = (rf"^(?:{SCHEME}://{HOST}(?::{PORT})?{REST}"
                     rf"|gs://{BUCKET}/[{URL_CHAR}]+|upload:{UPLOAD_ID})$")
"""A video's `url` (issue 35): an http(s) URL, an object of an input bucket
(`gs://bucket/object`, INPUT_BUCKETS) or a finished upload (`upload:<upload_id>`)."""

_URL = re.compile(URL_PATTERN)
_VIDEO_URL = re.compile(VIDEO_URL_PATTERN)
_GS = re.compile(rf"gs://({BUCKET})/(.+)", re.DOTALL)
_HOST_NAME = re.compile(HOST_NAME)
_IPV6 = re.compile(IPV6)
_LABEL = re.compile(LABEL)
_PORT = re.compile(PORT)
_SCHEME_PREFIX = re.compile(r"([A-Za-z][A-Za-z0-9+.-]*):")


def url_problem(value: str) -> str | None:
    """What is wrong with a URL's form, None when nothing is. The decision is URL_PATTERN
    (and MAX_URL_LENGTH); the rest only explains a refusal."""
    if len(value) > MAX_URL_LENGTH:
        return f"must be at most {MAX_URL_LENGTH} characters"
    if _URL.fullmatch(value):
        return None
    return _explain(value)


def video_url_problem(value: str) -> str | None:
    """`url_problem` for a video's `url`, which may also name a bucket's object or an
    upload. The decision is VIDEO_URL_PATTERN."""
    if len(value) > MAX_URL_LENGTH:
        return f"must be at most {MAX_URL_LENGTH} characters"
    if _VIDEO_URL.fullmatch(value):
        return None
    if value.startswith("gs://"):
        bucket = value[5:].split("/", 1)[0]
        if not re.fullmatch(BUCKET, bucket):
            return f"bucket {bucket[:64]!r} is not a valid GCS bucket name"
        return "must be gs://bucket/object with an object name (no whitespace or controls)"
    if value.startswith("upload:"):
        return "upload id must be the 32 hex digits POST /api/v1/uploads gave"
    problem = _explain(value)
    if problem == "must be an http or https URL":
        return "must be an http or https URL, gs://bucket/object or upload:<upload_id>"
    return problem


def split_gs(value: str) -> tuple[str, str] | None:
    """(bucket, object name) of a `gs://` URL, None for any other URL."""
    match = _GS.fullmatch(value)
    return (match.group(1), match.group(2)) if match else None


def upload_id_of(value: str) -> str | None:
    """The upload id of an `upload:` URL, None for any other URL."""
    rest = value.removeprefix("upload:")
    return rest if rest != value and re.fullmatch(UPLOAD_ID, rest) else None


def check_video_url(value: str) -> str:
    """`video_url_problem` as a pydantic validator."""
    problem = video_url_problem(value)
    if problem:
        raise ValueError(problem)
    return value


def check_http_url(value: str) -> str:
    """`url_problem` as a pydantic validator (ValueError names the problem)."""
    problem = url_problem(value)
    if problem:
        raise ValueError(problem)
    return value


def _explain(value: str) -> str:
    if any(ch.isspace() or ord(ch) < 32 or ord(ch) == 127 for ch in value):
        return "must not contain whitespace or control characters"
    scheme = _SCHEME_PREFIX.match(value)
    if not scheme or scheme.group(1).lower() not in ("http", "https") \
            or not value[scheme.end():].startswith("//"):
        return "must be an http or https URL"
    rest = value[scheme.end() + 2:]
    authority = re.split(r"[/?#]", rest, maxsplit=1)[0]
    tail = rest[len(authority):]
    if "@" in authority:
        return "must not contain credentials"
    if authority.startswith("["):
        host, bracket, port_part = authority[1:].partition("]")
        if not bracket:
            return f"host [{host[:64]} lacks its closing ]"
        if not _IPV6.fullmatch(host):
            return f"host [{host[:64]}] is not a valid IPv6 address"
    else:
        host, colon, port = authority.partition(":")
        port_part = colon + port
        if not host:
            return "must include a host"
        reason = host_name_problem(host)
        if reason:
            return f"host {host[:80]!r} is not a valid host name ({reason})"
    if port_part and not (port_part.startswith(":") and _PORT.fullmatch(port_part[1:])):
        return "port must be a number from 1 to 65535"
    if not re.fullmatch(REST, tail):
        bad = next(ch for ch in tail if not re.fullmatch(f"[{URL_CHAR}]", ch))
        return f"must not contain U+{ord(bad):04X}"
    return "is not a valid URL"


def host_name_problem(host: str) -> str | None:
    """Why `host` (no port, no brackets) is not a host name or IPv4 address the grammar
    accepts; None when it is."""
    if re.fullmatch(IPV4, host) or _HOST_NAME.fullmatch(host):
        return None
    if not host.isascii():
        return "Unicode host names must be given in their IDNA form, xn--…"
    if host.endswith("."):
        return "no trailing dot"
    labels = host.split(".")
    if any(not label for label in labels):
        return "empty label"
    for label in labels:
        bad = sorted({ch for ch in label if not (ch.isalnum() or ch == "-")})
        if bad:
            return f"character {bad[0]!r} not allowed; letters, digits and - only"
        if len(label) > 63:
            return "a label is longer than 63 characters"
        if not _LABEL.fullmatch(label):
            return "a label must not start or end with -"
    if all(part.isdigit() for part in labels):
        return "numbers only: an IPv4 address is four numbers 0-255, no leading zeros"
    return "the last label must start with a letter"
