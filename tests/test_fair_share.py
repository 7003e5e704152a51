"""Fair share of the key pool across teams (issue 36, part 3): weights, weighted fair
queuing on the local queue (real Redis), the consumer paced to the pool, and the worker's
fair gate on Cloud Tasks (the emulator), whose deferrals lose and repeat nothing."""

from __future__ import annotations

import threading
from collections import Counter

import pytest
import redis

from scripts import keys as keys_cli
from shared import redis_keys
from shared.accounts.importer import AccountEntry, import_accounts
from shared.errors import InvalidInput
from shared.queue.local_consumer import Consumer, ConsumerConfig
from shared.queue.redis_queue import RedisQueue
from shared.teams.caps import CapStore, TeamCaps, check_weight
from shared.teams.fair import FairGate
from tests.helpers import wait_for
from tests.test_cloudtasks import QUEUE, tasks_emulator, worker_server  # noqa: F401 - fixtures
from tests.test_teams import PEPPER


def ids(team: str, count: int) -> list[str]:
    return [f"{team[:4]:0<4}{n:028x}" for n in range(count)]


def set_weight(client: redis.Redis, team: str, weight: float) -> None:
    CapStore(client).set(team, TeamCaps(weight=weight))


# --- weights ----------------------------------------------------------------------------

def test_vtt_keys_sets_and_shows_a_weight(app_env, redis_client, capsys) -> None:
    app_env(API_KEY_PEPPER=PEPPER)
    assert keys_cli.main(["caps", "--team", "news"]) == 0
    assert "weight 1" in capsys.readouterr().out
    assert keys_cli.main(["caps", "--team", "news", "--weight", "3",
                          "--max-per-day", "50"]) == 0
    assert "max_per_day 50, max_in_flight none, weight 3" in capsys.readouterr().out
    assert CapStore(redis_client).get("news") == TeamCaps(max_per_day=50, weight=3.0)
    assert keys_cli.main(["caps", "--team", "news", "--max-per-day", "none"]) == 0
    assert CapStore(redis_client).get("news").weight == 3.0  # kept when not given


@pytest.mark.parametrize("value", ["0", "-2", "many", "nan", "1e9"])
def test_a_weight_of_zero_negative_or_not_a_number_is_refused(app_env, redis_client, capsys,
                                                              value: str) -> None:
    app_env(API_KEY_PEPPER=PEPPER)
    with pytest.raises(SystemExit) as exited:
        keys_cli.main(["caps", "--team", "news", "--weight", value])
    assert exited.value.code == 2
    err = capsys.readouterr().err
    assert "--weight" in err and "weight:" in err
    assert not redis_client.exists(redis_keys.api_team_caps("news"))  # nothing written


@pytest.mark.parametrize("value", [0, -1, "x", None, True, float("inf")])
def test_the_store_refuses_a_bad_weight_naming_the_field(redis_client, value) -> None:
    with pytest.raises(InvalidInput, match=r"^weight: "):
        check_weight(value)
    with pytest.raises(InvalidInput, match=r"^weight: "):
        CapStore(redis_client).set("news", TeamCaps(max_per_day=5, weight=value))
    assert not redis_client.exists(redis_keys.api_team_caps("news"))


# --- weighted fair queuing on the local queue --------------------------------------------

def take_all(queue: RedisQueue, count: int) -> list[str]:
    taken = [queue.take(timeout_s=0.01) for _ in range(count)]
    assert None not in taken
    return taken  # type: ignore[return-value]


def test_a_newcomers_ids_are_taken_before_a_backlog(redis_client) -> None:
    queue = RedisQueue(redis_client, fair=True)
    backlog, newcomer = ids("aaaa", 200), ids("bbbb", 5)
    queue.enqueue_many([(task_id, "") for task_id in backlog], team="alpha")
    first = take_all(queue, 20)
    assert first == backlog[:20]  # a team alone: its own order, back to back
    queue.enqueue_many([(task_id, "") for task_id in newcomer], team="beta")
    # the newcomer holds no pool slot, the backlog 20 (within the rate window): the
    # newcomer's ids are taken next, not after the 180 still queued
    assert take_all(queue, 5) == newcomer
    assert queue.depth().pending == 200 - 20
    assert take_all(queue, 2) == backlog[20:22]  # then the backlog alone again
    assert redis_client.smembers(redis_keys.TASK_QUEUE_TEAMS) == {"alpha"}


def test_weights_share_the_takes_3_to_1(redis_client) -> None:
    set_weight(redis_client, "alpha", 3)
    queue = RedisQueue(redis_client, fair=True)
    queue.enqueue_many([(t, "") for t in ids("aaaa", 100)], team="alpha")
    queue.enqueue_many([(t, "") for t in ids("bbbb", 100)], team="beta")
    shares = Counter(t[:4] for t in take_all(queue, 80))
    assert abs(shares["aaaa"] - 60) <= 1 and shares["aaaa"] + shares["bbbb"] == 80


def test_fair_queue_blocks_wakes_forgets_and_fifo_when_off(redis_client) -> None:
    queue = RedisQueue(redis_client, fair=True)
    assert queue.take(timeout_s=0.05) is None
    woke = []
    taker = threading.Thread(target=lambda: woke.append(queue.take(timeout_s=5)))
    taker.start()
    one, two = ids("cccc", 2)
    queue.enqueue(one, team="gamma")
    taker.join(5)
    # the wake-up token ends the blocked wait; the next take finds the id
    assert woke in ([None], [one])
    assert (woke[0] or queue.take(timeout_s=0.5)) == one
    queue.enqueue(two, team="gamma")
    assert queue.take(timeout_s=0.01, fresh=False) is None  # fresh ids wait for the pace
    assert queue.depth().pending == 1
    queue.forget([two])
    assert queue.take(timeout_s=0.01) is None and queue.depth().pending == 0
    fifo = RedisQueue(redis_client)  # FAIR_SHARE=false: one list, first come first served
    fifo.enqueue(one, team="gamma")
    assert redis_client.llen(redis_keys.TASK_QUEUE) == 1
    assert not redis_client.exists(redis_keys.team_queue("gamma"))


def test_the_consumer_takes_a_fresh_id_only_when_a_pool_slot_is_near(
        redis_client, receiver_factory) -> None:
    """With a pace, the teams' order is decided slot by slot: a fresh id stays on the fair
    ZSet (a newcomer can still go before it) until the pool's next slot is near; an id
    that already waited (the ready list) is delivered at once."""
    worker = receiver_factory([(200, {})] * 3)
    slot_in = [30.0]
    queue = RedisQueue(redis_client, fair=True)
    consumer = Consumer(queue, ConsumerConfig(worker_url=worker.url, concurrency=2),
                        pace=lambda: slot_in[0])
    fresh, waited = ids("dddd", 2)
    queue.enqueue(fresh, team="delta")
    queue.enqueue(waited, delay_s=0.05)
    runner = threading.Thread(target=consumer.run, daemon=True)
    runner.start()
    try:
        wait_for(lambda: len(worker.received) == 1, timeout_s=10)
        assert redis_client.lrange(redis_keys.team_queue("delta"), 0, -1) == [fresh]
        slot_in[0] = 0.1
        wait_for(lambda: len(worker.received) == 2, timeout_s=10)
    finally:
        consumer.stop()
        runner.join(10)


# --- the worker's fair gate (Cloud Tasks) ------------------------------------------------

def test_a_team_alone_takes_every_slot(redis_client) -> None:
    gate = FairGate(redis_client)
    assert all(gate.admit("alpha", True, 5000) for _ in range(50))
    assert gate.waiting() == []


def test_a_waiting_newcomer_goes_next_and_costs_nothing_once_served(redis_client) -> None:
    gate = FairGate(redis_client)
    for _ in range(20):
        assert gate.admit("alpha", True, 5000)
    assert not gate.admit("beta", False, 5000)  # no slot yet: beta waits, counted
    assert gate.waiting() == ["beta"]
    # the next slot: beta holds none, alpha 20 (within the rate window): beta goes first
    assert not gate.admit("alpha", True, 5000)
    assert sorted(gate.waiting()) == ["alpha", "beta"]
    assert gate.admit("beta", True, 5000)
    assert gate.waiting() == ["alpha"]
    assert gate.admit("alpha", True, 5000) and gate.admit("alpha", True, 5000)  # beta is done


def test_the_gate_shares_slots_3_to_1(redis_client) -> None:
    set_weight(redis_client, "alpha", 3)
    gate = FairGate(redis_client)
    taken: Counter[str] = Counter()
    for slot in range(80):  # both backlogged: between slots, deliveries of both are
        # deferred (no slot yet); at the slot, both arrive, in either order
        order = ("alpha", "beta") if slot % 2 else ("beta", "alpha")
        assert not any([gate.admit(team, False, 5000) for team in order])
        for team in order:
            if gate.admit(team, True, 5000):
                taken[team] += 1
                break
    assert abs(taken["alpha"] - 60) <= 1 and taken["alpha"] + taken["beta"] == 80


def test_a_team_that_stopped_waiting_no_longer_holds_others(redis_client) -> None:
    gate = FairGate(redis_client)
    assert gate.admit("alpha", True, 5000)
    assert not gate.admit("beta", False, 1)  # waits for 1 ms only
    wait_for(lambda: gate.waiting() == [], timeout_s=2)
    assert gate.admit("alpha", True, 5000) and gate.admit("alpha", True, 5000)


@pytest.mark.slow
def test_cloud_tasks_deferral_loses_nothing_and_runs_once(
        app_env, tasks_emulator, worker_server,  # noqa: F811 - the fixtures imported above
        standin, media_server, redis_client):
    """A full pool defers a Cloud Tasks delivery: a new delivery carries the task (named on
    its row, no attempt spent) and the first is acknowledged; when the window frees, the
    task runs once — a duplicate delivery meanwhile changes nothing."""
    from shared.app.tasks import create_task
    from shared.services import get_services
    from shared.tasks.models import CreateTaskRequest

    app_env(QUEUE="cloudtasks", CLOUD_TASKS_QUEUE=QUEUE, WORKER_URL=worker_server,
            CLOUD_TASKS_EMULATOR_HOST=tasks_emulator, TAGGER="gemini",
            GEMINI_BASE_URL=standin.base_url, GEMINI_RATE_WINDOW_S=4, RESULT_CACHE="false")
    import_accounts(redis_client, [AccountEntry(api_key="AIzaSyFAIR" + "0" * 29,
                                                daily_limit=100, minute_limit=1)])
    services = get_services()
    assert services.worker.fair is not None
    lease = services.pool.acquire()  # the pool's one slot is taken: the next is ~4 s away
    assert services.pool.stamp_sent(lease)
    request = CreateTaskRequest.model_validate(
        {"url": media_server.url("files/clip.mp4"), "platform": "rpa"},
        context={"platforms": ["rpa"]})
    task = create_task(services, request, team="news")[0]
    deferred = wait_for(lambda: (t := services.store.get(task.task_id)).delivery
                        and t.delivery.startswith("f") and t, timeout_s=10)
    assert deferred.status == "pending" and deferred.attempts == 0
    # (the emulator has no GetTask: the deferred delivery shows itself by running the task)
    services.queue.enqueue(task.task_id, url=task.url, generation="dup")  # a duplicate
    done = wait_for(lambda: (t := services.store.get(task.task_id)).status == "completed"
                    and t, timeout_s=30)
    assert done.attempts == 1
    assert len(standin.generate_calls()) == 1  # tagged once
