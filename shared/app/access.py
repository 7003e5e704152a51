"""Who is calling (issue 36): a key presented to the API becomes a `Caller` (team and
scopes) or a refusal. The handlers only parse the request; the decision is here."""

from __future__ import annotations

import hmac

from shared.app.context import Services
from shared.errors import Forbidden, Unauthenticated
from shared.teams.attempts import AttemptLimits, FailedAttempts
from shared.teams.keys import ADMIN, Caller, KeyStore, Scope

__all__ = ["Caller", "Scope", "authenticate", "authorize", "key_store", "visible_team"]


def key_store(services: Services) -> KeyStore:
    return KeyStore(services.redis, services.settings.api.API_KEY_PEPPER)


def authenticate(services: Services, presented: str | None, address: str,
                 header: str = "Authorization") -> Caller:
    """The caller behind `presented`. A deployment with no API_TOKENS and no scoped key is
    open (local use), as before teams. An API_TOKENS token is an admin of the default team
    (the upgrade path). A wrong key counts against the address (`FailedAttempts`)."""
    settings = services.settings
    store = key_store(services)
    if not settings.api.API_TOKENS and not store.any():
        return ADMIN
    if not presented:
        raise Unauthenticated(f"{header}: a key is required")
    attempts = FailedAttempts(services.redis, AttemptLimits(
        settings.api.AUTH_FAILURE_WINDOW_S, settings.api.AUTH_FAILURE_LIMIT))
    attempts.check(address)
    if any(hmac.compare_digest(presented.encode(), token.encode())
           for token in settings.api.API_TOKENS):
        return ADMIN
    try:
        caller = store.verify(presented)
    except Unauthenticated:
        attempts.failed(address)
        raise
    if caller is None:
        attempts.failed(address)
        raise Unauthenticated(f"{header}: key not accepted")
    return caller


def visible_team(caller: Caller) -> str | None:
    """The team whose tasks, batches and results the caller may see; None: every team's
    (an admin key)."""
    return None if caller.allows(Scope.ADMIN) else caller.team


def authorize(caller: Caller, scope: Scope) -> None:
    """Forbidden, naming the scope, when the caller's key lacks it (admin has them all)."""
    if not caller.allows(scope):
        held = ", ".join(sorted(caller.scopes)) or "none"
        raise Forbidden(f"scope: this key lacks the `{scope}` scope (it has {held})")
