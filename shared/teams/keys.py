"""Teams' scoped API keys (issue 36), kept in Redis where every function reads them within
its time limits.

A key reads `vtt_<key id>_<secret>`. The id is public (it names the Redis hash, shows in
`vtt-keys list` and logs), so a lookup is one HGETALL; the secret is never stored, logged
or put in a key name: the hash holds HMAC-SHA256(API_KEY_PEPPER, secret), compared in
constant time.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum

import redis

from shared import redis_keys
from shared.errors import InvalidInput, NotConfigured, NotFound, Unauthenticated
from shared.redis_conn import redis_outage


class Scope(StrEnum):
    SUBMIT = "submit"
    """Create tasks and batches, uploads, the synchronous route, retries."""
    READ = "read"
    """The team's own tasks, batches, exports, subtitles, frames and search."""
    ADMIN = "admin"
    """The key pool, the accounts, other teams, the stats of all: and so everything."""


ALL_SCOPES = frozenset(Scope)

DEFAULT_TEAM = "default"
"""The team of the API_TOKENS admin keys and of an open (local) deployment: the one team a
deployment had before teams existed."""

TEAM_NAME = re.compile(r"^[a-z0-9][a-z0-9_-]*$")
MAX_TEAM_NAME = 32
"""A team name is an id (Redis names, a database column later): short, lowercase, plain."""

MAX_KEY_NAME = 64
"""A key's label (who or what uses it), for `vtt-keys list`."""

KEY_PREFIX = "vtt_"
KEY_ID_CHARS = 12
KEY_FORM = re.compile(r"^vtt_(?P<id>[0-9a-f]{12})_(?P<secret>[A-Za-z0-9_-]{43})$")
"""`vtt_` + 12 hex (the id, 48 random bits) + `_` + 43 base64url characters (256 bits)."""

LAST_USED_EVERY_S = 60
"""`last_used_at` is written at most this often per key: not one write per request."""


@dataclass(frozen=True)
class Caller:
    """Who a request comes from once authenticated: what the use cases may look at."""

    team: str
    scopes: frozenset[Scope]
    key_id: str | None = None
    """The scoped key's id; None for an API_TOKENS key or an open deployment."""

    def allows(self, scope: Scope) -> bool:
        return scope in self.scopes or Scope.ADMIN in self.scopes


ADMIN = Caller(DEFAULT_TEAM, ALL_SCOPES)
"""An API_TOKENS key, or anyone on a deployment with no key at all (local use)."""


def check_team(team: str) -> str:
    """The team name, or InvalidInput naming what is wrong with it."""
    if not team.strip():
        raise InvalidInput("team: empty; give a name such as `marketing`")
    if len(team) > MAX_TEAM_NAME:
        raise InvalidInput(f"team: {len(team)} characters, at most {MAX_TEAM_NAME}")
    if not TEAM_NAME.match(team):
        raise InvalidInput("team: lowercase letters, digits, `-` and `_` only, starting "
                           "with a letter or digit")
    return team


def parse_scopes(text: str | Iterable[str]) -> frozenset[Scope]:
    """`submit,read` as scopes; InvalidInput naming an unknown one."""
    names = [part.strip() for part in (text.split(",") if isinstance(text, str) else text)]
    if not any(names):
        raise InvalidInput(f"scopes: none given; choose from {', '.join(Scope)}")
    try:
        return frozenset(Scope(name) for name in names if name)
    except ValueError:
        unknown = next(name for name in names if name and name not in set(Scope))
        raise InvalidInput(f"scopes: {unknown[:32]!r} is no scope; choose from "
                           f"{', '.join(Scope)}") from None


def key_id_of(text: str) -> str | None:
    """The id of a key, or of a bare id; None when `text` is neither."""
    if match := KEY_FORM.match(text):
        return match["id"]
    return text if re.fullmatch(r"[0-9a-f]{12}", text) else None


def digest(pepper: str, secret: str) -> str:
    return hmac.new(pepper.encode(), secret.encode(), hashlib.sha256).hexdigest()


def _now() -> str:
    return datetime.now(UTC).replace(microsecond=0).isoformat()


@dataclass(frozen=True)
class KeyRecord:
    """A key as `vtt-keys list` shows it: never its secret nor its hash."""

    key_id: str
    team: str
    scopes: tuple[str, ...]
    name: str
    created_at: str
    last_used_at: str
    revoked_at: str


class KeyStore:
    """The scoped keys in Redis. Redis being down is ServiceUnavailable (a 503)."""

    def __init__(self, client: redis.Redis, pepper: str) -> None:
        self.redis = client
        self.pepper = pepper

    def any(self) -> bool:
        """Whether a scoped key was ever created (then the API needs a key)."""
        with redis_outage():
            return bool(self.redis.scard(redis_keys.API_KEY_IDS))

    def create(self, team: str, scopes: frozenset[Scope], name: str = "") -> str:
        """A new key for `team`; the only time its secret exists outside its holder."""
        if not self.pepper:
            raise NotConfigured("API_KEY_PEPPER: not set; a scoped key needs it (a long "
                                "random secret, the same in every function)")
        check_team(team)
        if len(name) > MAX_KEY_NAME:
            raise InvalidInput(f"name: {len(name)} characters, at most {MAX_KEY_NAME}")
        key_id, secret = secrets.token_hex(KEY_ID_CHARS // 2), secrets.token_urlsafe(32)
        record = {"team": team, "scopes": ",".join(sorted(scopes)), "name": name,
                  "hash": digest(self.pepper, secret), "created_at": _now()}
        with redis_outage():
            if not self.redis.hsetnx(redis_keys.api_key(key_id), "team", team):
                return self.create(team, scopes, name)  # 2^-48: an id drawn twice
            pipe = self.redis.pipeline()
            pipe.hset(redis_keys.api_key(key_id), mapping=record)
            pipe.sadd(redis_keys.API_KEY_IDS, key_id)
            pipe.sadd(redis_keys.API_TEAMS, team)
            pipe.execute()
        return f"{KEY_PREFIX}{key_id}_{secret}"

    def verify(self, presented: str) -> Caller | None:
        """The caller a key stands for; None for one that is not ours (malformed, unknown,
        wrong secret); Unauthenticated for a revoked one (its holder learns why)."""
        match = KEY_FORM.match(presented)
        if not match:
            return None
        if not self.pepper:
            raise NotConfigured("API_KEY_PEPPER: not set; scoped keys cannot be checked")
        with redis_outage():
            record = self.redis.hgetall(redis_keys.api_key(match["id"]))
        wanted = digest(self.pepper, match["secret"])
        if not hmac.compare_digest(wanted, record.get("hash", "")):
            return None
        if record.get("revoked_at"):
            raise Unauthenticated(f"Authorization: key {match['id']} was revoked")
        self._touch(match["id"], record.get("last_used_at", ""))
        return Caller(record["team"], parse_scopes(record["scopes"]), match["id"])

    def _touch(self, key_id: str, last_used_at: str) -> None:
        now = datetime.now(UTC)
        if last_used_at and (now - datetime.fromisoformat(last_used_at)
                             ).total_seconds() < LAST_USED_EVERY_S:
            return
        with redis_outage():
            self.redis.hset(redis_keys.api_key(key_id), "last_used_at", _now())

    def revoke(self, key_id: str) -> KeyRecord:
        """Revoked at once (every function reads the record on every request); the record
        stays, so `list` shows it and the API stays closed."""
        with redis_outage():
            if not self.redis.hexists(redis_keys.api_key(key_id), "hash"):
                raise NotFound(f"key_id: no key {key_id[:16]}")
            self.redis.hsetnx(redis_keys.api_key(key_id), "revoked_at", _now())
        return self.get(key_id)

    def get(self, key_id: str) -> KeyRecord:
        with redis_outage():
            record = self.redis.hgetall(redis_keys.api_key(key_id))
        if "hash" not in record:
            raise NotFound(f"key_id: no key {key_id[:16]}")
        return _shown(key_id, record)

    def list(self, team: str | None = None) -> list[KeyRecord]:
        """Every key (of `team`), oldest first; an id whose record is gone is skipped."""
        with redis_outage():
            ids = sorted(self.redis.smembers(redis_keys.API_KEY_IDS))
            pipe = self.redis.pipeline()
            for key_id in ids:
                pipe.hgetall(redis_keys.api_key(key_id))
            records = pipe.execute()
        shown = [_shown(key_id, record) for key_id, record in zip(ids, records, strict=True)
                 if "hash" in record and (team is None or record.get("team") == team)]
        return sorted(shown, key=lambda r: (r.created_at, r.key_id))


def _shown(key_id: str, record: dict[str, str]) -> KeyRecord:
    return KeyRecord(key_id, record.get("team", ""), tuple(record.get("scopes", "").split(",")),
                     record.get("name", ""), record.get("created_at", ""),
                     record.get("last_used_at", ""), record.get("revoked_at", ""))
