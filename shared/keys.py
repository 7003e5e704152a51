"""Every Redis key name the service uses, in one place (DESIGN §6).

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

TASK_INFO_TTL_S = 7 * 24 * 3600
"""How long `task_info:{id}` lives: long enough to inspect a week of deliveries."""


def task_info(task_id: str) -> str:
    """Hash with url, status, retry_count, created_at of one queued task."""
    return f"task_info:{task_id}"


def task_lock(task_id: str) -> str:
    """Lease lock held by the worker processing the task (TTL = TASK_TIMEOUT_S)."""
    return f"task_queue_lock:{task_id}"
