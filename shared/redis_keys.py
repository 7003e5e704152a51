"""Every Redis key name the service uses, in one place (docs/architecture.md, "Redis keys").

Key names never contain secrets: account ids are the first 16 hex of sha256(api_key).
"""

TASK_QUEUE = "task_queue"
"""List of task ids ready to be delivered (LPUSH in, LMOVE out from the right)."""

TASK_QUEUE_PROCESSING = "task_queue_processing"
"""List of ids a consumer has taken and not yet acknowledged (recovered after a crash)."""

TASK_QUEUE_DELAYED = "task_queue_delayed"
"""ZSet of ids waiting for a retry; score = due time in epoch seconds."""

TASK_QUEUE_FAILED = "task_queue_failed"
"""List of ids that ran out of deliveries or attempts (dead letters)."""

TASK_QUEUE_TEAMS = "task_queue_teams"
"""Set of the teams with fresh ids queued (FAIR_SHARE)."""

TEAM_QUEUE_PREFIX = "task_queue_team:"
TEAM_USE_PREFIX = "task_queue_use:"
"""+ team: ZSet id -> epoch ms the local queue gave a team's id to a delivery, kept two
rate windows: the team's recent use of the pool (the Lua script appends the team)."""
FAIR_USE_PREFIX = "fair_use:"
"""+ team: ZSet member -> epoch ms the worker's fair gate let a team's delivery take a pool
slot (Cloud Tasks), kept two rate windows."""


def team_queue(team: str) -> str:
    """List of a team's fresh ids (FAIR_SHARE): LPUSH in, RPOP out, taken by fair share
    (docs/decisions.md, "Fair share across teams")."""
    return f"{TEAM_QUEUE_PREFIX}{team}"


FAIR_WAITING = "fair_waiting"
"""ZSet team -> epoch ms until which it counts as waiting (its deferred delivery comes
back before)."""

TASK_INFO_TTL_S = 7 * 24 * 3600
"""How long `task_info:{id}` lives: long enough to inspect a week of deliveries."""


def task_info(task_id: str) -> str:
    """Hash with url, status, retry_count, created_at of one queued task."""
    return f"task_info:{task_id}"


def task_lock(task_id: str) -> str:
    """Lease lock held by the worker processing the task (TTL = TASK_TIMEOUT_S)."""
    return f"task_queue_lock:{task_id}"


# --- Gemini key pool (ids are the first 16 hex of sha256(api_key)) -------------------

ACCOUNT_IDS = "google_accounts:keys"
"""Set of account ids in the pool."""

ACCOUNT_IMPORT_LOCK = "google_accounts:import_lock"
"""Held (SET NX EX) while an import swaps accounts in; acquisitions wait meanwhile."""

ACCOUNT_READY = "google_accounts:ready"
"""ZSet id → epoch µs from which the key may take a request of the main model again. Keys
free now score ≤ now, ordered by last use (least recently used first: round robin); a
saturated or cooling key scores the moment it frees. A hint kept by the scripts: every
candidate is re-checked against its counters before it is handed out."""

ACCOUNT_READY_DAY = "google_accounts:ready_day"
"""The quota day the ready scores were computed for; a new day re-checks every key."""

ACCOUNT_MODELS = "google_accounts:models"
"""Set of the other models (fallbacks) the pool has handed keys out for: each has its own
ready set, which a key coming back (enabled, re-imported) is put back into."""


def account_ready(model: str, main_model: str) -> str:
    """The ready set of `model`: ACCOUNT_READY for the main model (whose saturation says
    nothing about another model's quota), `google_accounts:ready:{model}` for the others."""
    return ACCOUNT_READY if model == main_model else f"{ACCOUNT_READY}:{model}"


def account_ready_day(model: str, main_model: str) -> str:
    return ACCOUNT_READY_DAY if model == main_model else f"{ACCOUNT_READY_DAY}:{model}"

ACCOUNT_WAIT_REASON = "google_accounts:wait_reason"
"""Hash id → why the key is parked (cooling down, daily quota used, minute limit)."""

ACCOUNT_PROMISED = "google_accounts:promised"
"""ZSet of request slots promised to waiting tasks (member → epoch ms of the slot), so
each waiter is told a different free moment instead of all arriving at once."""

ACCOUNT_RESYNC = "google_accounts:resync"
"""Set (with a TTL) while the ready set counts as in step with the accounts; when it
expires, the next acquisition puts every known key back in for a fresh look, so a status
edited by hand in Redis is honoured within that time."""

ACCOUNT_SEND_LATENCY = "google_accounts:send_latency_ms"
"""List of recent send latencies (ms, newest first): the pool sizes its send margin from
them (`AccountPool.send_margin_ms`)."""

ACCOUNT_PREFIX = "google_account:"
"""Per-account keys are `google_account:{id}:info|daily|minute_window` (used in Lua too)."""

DAILY_TTL_S = 2 * 24 * 3600
"""How long a key's daily counter lives: the quota day and the one before it."""


def account_info(account_id: str) -> str:
    return f"{ACCOUNT_PREFIX}{account_id}:info"


def account_daily(account_id: str) -> str:
    return f"{ACCOUNT_PREFIX}{account_id}:daily"


HISTORY_DAYS = 35
"""Quota days of per-key history kept (`account_usage`)."""

HISTORY_TTL_S = (HISTORY_DAYS + 1) * 24 * 3600
"""The usage hash lives this long after its last write; older days are pruned by the keys
job (`shared/accounts/history.py`)."""


def account_usage(account_id: str) -> str:
    """Hash `{quota day}:input|output|cost_micro|requests|429_minute|429_tokens|429_day|
    errors|probes|probes_ok` → what the key did that day (HISTORY_DAYS kept)."""
    return f"{ACCOUNT_PREFIX}{account_id}:usage"


def account_window(account_id: str) -> str:
    return f"{ACCOUNT_PREFIX}{account_id}:minute_window"


def account_limit_changes(account_id: str) -> str:
    """List of JSON `{at, from, to, why}`, newest first: how the learned limit moved."""
    return f"{ACCOUNT_PREFIX}{account_id}:limit_changes"


# --- quota owners: a Google Cloud project and a model (issue 37) ----------------------

PROJECT_PREFIX = "google_project:"
"""Gemini counts every window per project and model. A key imported with a `project` shares
the project's `google_project:{project}` names; a key without one is its own project, whose
names are the key's own (`google_account:{id}`). Under that base the main model's quota is
`:info|daily|minute_window|limit_changes` (limits, learned limits, a cooldown Gemini
announced for the whole project), another model's `:m:{model}:info|daily|…`. Project names
are letters, digits, `.`, `_` and `-` (never a secret, and never a `:`)."""

MODEL_INFIX = ":m:"


def quota_base(account_id: str, project: str, model: str, main_model: str) -> str:
    """The prefix of one quota owner's names (the same rule as `quota_base` in limits.lua)."""
    base = f"{PROJECT_PREFIX}{project}" if project else f"{ACCOUNT_PREFIX}{account_id}"
    return base if model == main_model else f"{base}{MODEL_INFIX}{model}"


def quota_info(base: str) -> str:
    """Hash: minute_limit, quota_daily, tpm_limit (the smallest any key of the project has
    written), learned_limit/learned_until/probe_at/probe_member, cooldown_until and
    announced_until of a per-project 429."""
    return f"{base}:info"


def quota_daily(base: str) -> str:
    return f"{base}:daily"


def quota_window(base: str) -> str:
    return f"{base}:minute_window"


def quota_limit_changes(base: str) -> str:
    return f"{base}:limit_changes"


def account_probes(account_id: str) -> str:
    """List of JSON `{at, outcome, detail, enabled}`, newest first: the key's health probes."""
    return f"{ACCOUNT_PREFIX}{account_id}:probes"


def pool_minute(epoch_minute: int) -> str:
    """Hash `requests|429_minute|…|capacity` of the whole pool in one minute (2 h kept)."""
    return f"google_accounts:minute:{epoch_minute}"


POOL_MINUTE_TTL_S = 2 * 3600

ACCOUNT_PROBE_LOCK = "google_accounts:probe_lock"
"""Held (SET NX PX) by the one process probing disabled keys."""

POOL_ALERT_STATE = "google_accounts:alert_state"
"""Hash condition → JSON `{active, since, sent_at, …}`: what the alert job last told."""

POOL_ALERT_LOCK = "google_accounts:alert_lock"
"""Held by the one process evaluating and sending pool alerts."""


# --- Gemini's own condition (shared/tagging/health.py) ------------------------------

GEMINI_ENDPOINTS = "gemini:endpoints"
"""Set of endpoint ids that ever failed (for the status report)."""


def gemini_model(model: str) -> str:
    """Hash: level, until, since, reason of an overloaded model's shared back-off."""
    return f"gemini:model:{model}"


def gemini_probe(model: str) -> str:
    """Held (SET NX) by the one worker probing a model whose back-off ended."""
    return f"gemini:model_probe:{model}"


def gemini_endpoint(endpoint_id: str) -> str:
    """Hash: level, until, since, reason (region | unreachable) of a failing endpoint;
    `endpoint_id` is a hash of the URL (a relay URL can carry a token)."""
    return f"gemini:endpoint:{endpoint_id}"


def gemini_endpoint_probe(endpoint_id: str) -> str:
    return f"gemini:endpoint_probe:{endpoint_id}"


RETENTION_LOCK = "task_retention:lock"
"""Held while one run of the retention job deletes expired tasks (issue 34)."""

BATCH_COLLECTOR_LOCK = "gemini_batches:collector_lock"
"""Held while one sweep of the Gemini batch collector runs (issue 27)."""


# --- API keys of teams (issue 36); ids are the public part of a key, never its secret --

API_KEY_IDS = "api_keys:ids"
"""Set of the ids of every scoped API key ever created, revoked ones included: once one
exists the API needs a key, and revoking the last one does not open it again."""

API_TEAMS = "api_teams"
"""Set of the team names that have (or had) a key."""


def api_key(key_id: str) -> str:
    """Hash of one scoped API key: team, scopes, name, HMAC of its secret, created_at,
    last_used_at, revoked_at. Never the secret."""
    return f"api_key:{key_id}"


def auth_failures(address: str) -> str:
    """Counter of wrong keys from one client address in the current window (TTL)."""
    return f"api_auth_failures:{address}"


# --- uploads (issue 35) -------------------------------------------------------------------

def upload(upload_id: str) -> str:
    """Hash of one upload: its storage key, announced size and type, team, expires_at,
    `receiving` (a PUT under way), `used_by` (the task that took it, or `(expired)`)."""
    return f"upload:{upload_id}"


UPLOADS_EXPIRING = "uploads:expiring"
"""ZSet upload id -> expires_at (epoch s) of the uploads no task has used yet: what the
clean-up removes."""


def api_team_caps(team: str) -> str:
    """Hash of a team's caps (issue 36): `max_per_day`, `max_in_flight`; absent: none."""
    return f"api_team_caps:{team}"


def api_team_created(team: str, day: str) -> str:
    """Tasks a team created on a UTC day (YYYY-MM-DD), against its `max_per_day`; expires
    two days later."""
    return f"api_team_created:{team}:{day}"


REUSE_INDEX_PREFIX = "reuse_index:"


def reuse_index(band: int, duration_class: int, high: int) -> str:
    """Hash of the near-duplicate index (issue 40): band `band` of a frame hash whose high
    byte is `high`, of videos in one duration class; field: the low byte → the fingerprint
    ids (8 hex digits each, packed) of the videos with that value at one of their anchors."""
    return f"{REUSE_INDEX_PREFIX}{band}:{duration_class}:{high}"
