"""The task lifecycle under concurrency: leases held and renewed, deliveries answered by
what the row says, the reconciler, quota waits — real Redis and both databases."""

from __future__ import annotations

import threading
import time
from datetime import UTC, datetime, timedelta

import sqlalchemy as sa

from shared import redis_keys
from shared.errors import WaitForKey
from shared.pipeline.runner import DeliveryKind, handle_delivery
from shared.services import Services
from shared.tasks.schema import video_tasks
from tests.helpers import queued_ids, reap, wait_for
from tests.test_worker import create


def test_delivery_of_a_held_task_is_503_with_the_time_left(services: Services,
                                                           media_server) -> None:
    services.settings.TASK_TIMEOUT_S = 6
    task_id = create(services, media_server.url("slow/2/clip.mp4"))
    first = threading.Thread(target=handle_delivery, args=(task_id, services.worker))
    first.start()
    wait_for(lambda: services.store.get(task_id).status == "processing")
    busy = handle_delivery(task_id, services.worker)  # the lock is held
    assert busy.kind == DeliveryKind.RETRY_AFTER and 1 <= busy.retry_after_s <= 6
    services.redis.delete(redis_keys.task_lock(task_id))  # Redis lost the lock: the lease answers
    leased = handle_delivery(task_id, services.worker)
    assert leased.kind == DeliveryKind.RETRY_AFTER and 1 <= leased.retry_after_s <= 6
    first.join()
    task = services.store.get(task_id)
    assert task.status == "completed" and task.attempts == 1  # nothing changed meanwhile


def test_heartbeat_keeps_a_slow_live_worker_from_being_duplicated(
        services: Services, media_server) -> None:
    services.settings.TASK_TIMEOUT_S = 1  # the download alone takes 3 leases
    task_id = create(services, media_server.url("slow/3/clip.mp4"))
    worker = threading.Thread(target=handle_delivery, args=(task_id, services.worker))
    worker.start()
    leases = set()
    while worker.is_alive():
        task = services.store.get(task_id)
        if task.status == "processing":
            leases.add(task.lease_until)
            counts = reap(services, 5, grace_s=60)
            assert counts["requeued"] == 0  # never seen as dead
            assert handle_delivery(task_id, services.worker).kind == DeliveryKind.RETRY_AFTER
        time.sleep(0.25)
    task = services.store.get(task_id)
    assert task.status == "completed" and task.attempts == 1 and len(leases) >= 3
    assert media_server.hits["/slow/3/clip.mp4"] == 1


def test_reconciler_redelivers_pending_rows_the_queue_lost(services: Services,
                                                          media_server) -> None:
    ids = [create(services, media_server.url("files/clip.mp4")) for _ in range(3)]
    assert reap(services, 5, grace_s=0)["redelivered"] == 0
    services.redis.flushdb()  # Redis restarted empty: the deliveries are gone
    counts = reap(services, 5, grace_s=0)
    assert counts["redelivered"] == 3
    assert sorted(queued_ids(services.redis)) == sorted(ids)
    assert reap(services, 5, grace_s=0)["redelivered"] == 0
    for task_id in ids:
        assert services.store.get(task_id).delivery.startswith("c")


def test_reconciler_leaves_tasks_whose_delivery_is_not_due(services: Services,
                                                          media_server) -> None:
    task_id = create(services, media_server.url("files/clip.mp4"))
    services.redis.flushdb()
    with services.store.engine.begin() as conn:  # a retry planned for later
        conn.execute(sa.update(video_tasks).where(video_tasks.c.task_id == task_id).values(
            next_attempt_at=datetime.now(UTC).replace(tzinfo=None) + timedelta(minutes=5)))
    assert reap(services, 5, grace_s=1)["redelivered"] == 0


def test_a_kill_between_lock_and_claim_leaves_a_recoverable_task(
        services: Services, media_server) -> None:
    """The lock is taken and the process dies before claiming: the row is still pending;
    the next delivery waits for the lock to end, then completes."""
    services.settings.TASK_TIMEOUT_S = 1
    task_id = create(services, media_server.url("files/clip.mp4"))
    services.redis.set(redis_keys.task_lock(task_id), "dead-worker", px=1000)
    assert handle_delivery(task_id, services.worker).kind == DeliveryKind.RETRY_AFTER
    time.sleep(1.05)
    assert handle_delivery(task_id, services.worker).task_status == "completed"


class _NoKeys:
    """A tagger whose pool never has a key."""

    provider, model, prompt_version, needs_quota = "gemini", "m", "v", True

    def check_quota(self) -> None:
        raise WaitForKey("no Gemini key free: minute limit reached", retry_after_s=0.25)

    def tag(self, request):
        raise AssertionError("never reached")


def test_waiting_for_a_key_spends_no_attempt_then_ends_at_the_limit(
        services: Services, media_server) -> None:
    services.tagger = _NoKeys()
    services.settings.MAX_ATTEMPTS = 2
    task_id = create(services, media_server.url("files/clip.mp4"))
    for _ in range(4):  # more waits than attempts: none is spent
        reply = handle_delivery(task_id, services.worker)
        assert (reply.kind, reply.task_status) == (DeliveryKind.DONE, "pending")
        assert 0 < reply.retry_after_s <= 0.25  # the pool has no key: its own hint
    task = services.store.get(task_id)
    assert task.attempts == 0 and task.error_code == "no_key_available"
    assert media_server.hits["/files/clip.mp4"] == 0  # nothing downloaded while waiting
    assert services.redis.zscore(redis_keys.TASK_QUEUE_DELAYED, task_id) is not None
    services.settings.MAX_QUOTA_WAIT_S = 0.5
    time.sleep(0.6)
    reply = handle_delivery(task_id, services.worker)
    task = services.store.get(task_id)
    assert (reply.task_status, task.status, task.error_code) == (
        "failed", "failed", "no_key_available")
    assert "MAX_QUOTA_WAIT_S" in task.message


def test_planned_retry_answers_200_only_once_the_next_delivery_exists(
        services: Services, media_server) -> None:
    task_id = create(services, media_server.url("status/503"))
    reply = handle_delivery(task_id, services.worker)
    task = services.store.get(task_id)
    assert reply.kind == DeliveryKind.DONE and task.status == "pending"
    assert services.queue.is_live(task_id, task.delivery) is True
    assert task.delivery.startswith("t")
