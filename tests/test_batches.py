"""Batches, exports and subtitles: through the `api` function on MariaDB + real Redis, and
the store on both databases."""

from __future__ import annotations

import csv
import hashlib
import hmac
import io
import json
import threading
import uuid

import functions_framework
import pytest
import redis

from shared.app.batches import create_batch
from shared.pipeline.reaper import reconcile
from shared.pipeline.runner import handle_delivery
from shared.services import Services, get_services
from shared.tagging.result import KeyMoment, Tag, TagResult, Technical, Usage
from shared.tasks.batch_models import CreateBatchRequest
from tests.helpers import queued_ids

ITEM = {"url": "https://cdn.example.com/v.mp4", "platform": "rpa"}
CONTEXT = {"platforms": ["rpa", "miaobi"], "envs": ["develop", "production"]}


@pytest.fixture
def client(app_env):
    return functions_framework.create_app("api", "main.py").test_client()


def post_batch(client, items, name="catalogue", headers=None, **extra):
    return client.post("/api/v1/batches", json={"name": name, "items": items, **extra},
                       headers=headers or {})


def tag_result(*, tags=("女性", "=HYPERLINK(1)"), moments=()) -> dict:
    return TagResult(
        tags=list(tags),
        dimensions={"vision": {"characters": [Tag(tag=tags[0], confidence=0.9)]},
                    "content": {"theme": [Tag(tag=tags[-1], confidence=0.5)]}},
        key_moments=list(moments), summary="限时优惠 summary",
        technical=Technical(duration_s=6.0, has_audio=True, container="mp4"),
        language="zh", provider="local", model="local", usage=Usage(cost_usd=0.0012),
    ).model_dump(mode="json")


def complete(services: Services, task_id: str, result: dict | None = None) -> None:
    claim = services.store.claim(task_id, 30, 5)
    assert claim.outcome == "claimed"
    assert services.store.complete(task_id, claim.task.attempts, result=result or tag_result(),
                                   timings={}, video={"duration_s": 6.0})


def fail(services: Services, task_id: str) -> None:
    claim = services.store.claim(task_id, 30, 5)
    assert services.store.fail(task_id, claim.task.attempts, error_code="video_unreadable",
                               message="broken")


# --- creating ---------------------------------------------------------------------------


def test_items_are_checked_one_by_one_and_queued_together(client,
                                                          redis_client: redis.Redis) -> None:
    items = [ITEM, {**ITEM, "platform": "nope"}, {**ITEM, "uid": 7, "env": "production",
                                                  "dismensions": "audio"}]
    response = post_batch(client, items)
    body = response.get_json()
    assert response.status_code == 200 == body["code"]
    data = body["data"]
    assert (data["accepted"], data["rejected"]) == (2, 1)
    assert [item["index"] for item in data["items"]] == [0, 1, 2]
    assert data["items"][1]["task_id"] is None
    assert data["items"][1]["error"]["field"] == "platform"
    assert "unknown platform 'nope'" in data["items"][1]["error"]["reason"]
    created = [data["items"][0]["task_id"], data["items"][2]["task_id"]]
    assert sorted(queued_ids(redis_client)) == sorted(created)
    third = client.get(f"/api/v1/task/{created[1]}").get_json()["data"]
    assert (third["uid"], third["env"], third["dimensions"]) == ("7", "production", ["audio"])
    batch = client.get(f"/api/v1/batches/{data['batch']['batch_id']}").get_json()["data"]
    assert batch["state"] == "open" and batch["total"] == 3
    assert batch["counts"] == {"pending": 2, "processing": 0, "waiting_batch": 0,
                               "completed": 0, "failed": 0}
    assert batch["progress"] == {"finished": 0, "total": 2}
    assert batch["finished_at"] is None and batch["name"] == "catalogue"
    listed = client.get("/api/v1/batches").get_json()["data"]["batches"]
    assert [b["batch_id"] for b in listed] == [batch["batch_id"]]


@pytest.mark.parametrize(("item", "field", "reason"), [
    ("https://cdn.example.com/v.mp4", "item", "must be a JSON object (got string)"),
    ([1, 2], "item", "must be a JSON object (got array)"),
    (None, "item", "must be a JSON object (got null)"),
    ({**ITEM, "vocabulary": "shop"}, "vocabulary", "must be an object"),
    ({**ITEM, "vocabulary": {"vision.colour": ["红"]}}, "vocabulary",
     "vision.colour: unknown dimension.field"),
    ({**ITEM, "mode": "fast"}, "mode", "input should be 'interactive' or 'batch'"),
    ({"platform": "rpa"}, "url", "is required"),
    ({**ITEM, "url": "ftp://x/y"}, "url", "must be an http or https URL"),
    ({**ITEM, "dimensions": "smell"}, "dimensions", "unknown dimension 'smell'"),
    ({**ITEM, "language": "fr"}, "language", "input should be 'zh' or 'en'"),
])
def test_a_bad_item_is_refused_in_its_slot(client, item, field: str, reason: str) -> None:
    data = post_batch(client, [ITEM, item]).get_json()["data"]
    assert (data["accepted"], data["rejected"]) == (1, 1)
    error = data["items"][1]["error"]
    assert error["field"] == field and error["reason"].startswith(reason)


def test_an_item_pointing_inside_the_network_is_refused(app_env) -> None:
    app_env(ALLOW_PRIVATE_URLS="false")
    client = functions_framework.create_app("api", "main.py").test_client()
    data = post_batch(client, [ITEM, {**ITEM, "url": "http://127.0.0.1/v.mp4"}]).get_json()
    error = data["data"]["items"][1]["error"]
    assert error["field"] == "url" and "public address" in error["reason"]
    refused = post_batch(client, [ITEM], callback_url="http://10.0.0.1/hook").get_json()
    assert refused["code"] == 400 and refused["message"].startswith("callback_url:")


@pytest.mark.parametrize(("items", "message"), [
    ([], "items: must not be empty"),
    ([ITEM] * 1001, "items: at most 1000 items (got 1001)"),
    ("not a list", "items: input should be a valid list"),
])
def test_batch_size_is_1_to_1000_items(client, items, message: str) -> None:
    response = post_batch(client, items)
    assert response.status_code == 400 and response.get_json()["message"] == message
    assert get_services().batches.list()[0] == []


def test_a_full_batch_of_1000_is_accepted(client, redis_client: redis.Redis) -> None:
    data = post_batch(client, [{**ITEM, "uid": i} for i in range(1000)]).get_json()["data"]
    assert data["accepted"] == 1000 and len(queued_ids(redis_client)) == 1000


@pytest.mark.parametrize(("body", "message"), [
    ({"items": [ITEM]}, "name: is required"),
    ({"name": "", "items": [ITEM]}, "name: string should have at least 1 character"),
    ({"name": "x", "items": [ITEM], "colour": 1}, "colour: unknown field"),
    ({"name": "x", "items": [ITEM], "callback_url": "nope"}, "callback_url:"),
])
def test_bad_batch_bodies(client, body, message: str) -> None:
    response = client.post("/api/v1/batches", json=body)
    assert response.status_code == 400 and response.get_json()["message"].startswith(message)


def test_a_body_over_the_limit_is_413_and_nothing_is_written(client) -> None:
    items = [{**ITEM, "url": "https://cdn.example.com/" + "v" * 2000} for _ in range(1000)]
    body = json.dumps({"name": "big", "items": items, "pad": "x" * 4_000_000})
    response = client.post("/api/v1/batches", data=body, content_type="application/json")
    assert response.status_code == 413 and response.get_json()["message"].startswith("body:")
    assert get_services().batches.list()[0] == []


def test_duplicate_urls_are_separate_tasks(client) -> None:
    data = post_batch(client, [ITEM, ITEM]).get_json()["data"]
    first, second = (item["task_id"] for item in data["items"])
    assert data["accepted"] == 2 and first != second


def test_idempotency_key_makes_the_call_safe_to_repeat(client,
                                                       redis_client: redis.Redis) -> None:
    headers = {"Idempotency-Key": "batch-1"}
    first = post_batch(client, [ITEM, {"bad": 1}], headers=headers).get_json()
    again = post_batch(client, [ITEM, {"bad": 1}], headers=headers).get_json()
    assert again["code"] == 200 and "existing batch" in again["message"]
    assert again["data"]["items"] == first["data"]["items"]
    assert again["data"]["batch"]["batch_id"] == first["data"]["batch"]["batch_id"]
    assert len(queued_ids(redis_client)) == 1
    other = post_batch(client, [ITEM, ITEM], headers=headers)
    assert other.status_code == 409 and other.get_json()["message"].startswith(
        "Idempotency-Key: already used")
    long_key = post_batch(client, [ITEM], headers={"Idempotency-Key": "k" * 129})
    assert long_key.status_code == 400


def test_a_twin_call_while_the_first_is_being_written_is_409(client) -> None:
    body = {"name": "twin", "items": [ITEM]}
    digest = hashlib.sha256(json.dumps(body, sort_keys=True, separators=(",", ":"))
                            .encode()).hexdigest()
    get_services().batches.begin(str(uuid.uuid4()), name="twin", total=1, callback_url=None,
                                 idempotency_key="twin-key", request_sha256=digest)
    response = client.post("/api/v1/batches", json=body, headers={"Idempotency-Key": "twin-key"})
    assert response.status_code == 409
    assert "still being processed" in response.get_json()["message"]


def test_redis_down_during_a_batch_leaves_nothing(app_env) -> None:
    app_env(REDIS_URL="redis://127.0.0.1:1/0")
    client = functions_framework.create_app("api", "main.py").test_client()
    response = post_batch(client, [ITEM, ITEM])
    assert response.status_code == 503 and response.headers["Retry-After"]
    services = get_services()
    assert services.batches.list()[0] == []
    assert sum(services.queries.count_by_status().values()) == 0


@pytest.mark.parametrize("path", ["/api/v1/batches/{id}", "/api/v1/batches/{id}/results"])
def test_unknown_and_malformed_batch_ids(client, path: str) -> None:
    unknown = client.get(path.format(id=uuid.uuid4()))
    assert unknown.status_code == 404 and unknown.get_json()["message"].startswith("batch_id:")
    malformed = client.get(path.format(id="not-an-id"))
    assert malformed.status_code == 400
    assert malformed.get_json()["message"].startswith("batch_id: malformed")


def test_bad_batch_list_queries(client) -> None:
    for query, field in (("limit=0", "limit"), ("cursor=zz", "cursor"), ("x=1", "x")):
        body = client.get(f"/api/v1/batches?{query}").get_json()
        assert body["code"] == 400 and body["message"].startswith(field)


# --- progress and the batch callback -----------------------------------------------------


def make_batch(services: Services, items: list[dict], callback_url: str | None = None,
               name: str = "b") -> tuple[str, list[str]]:
    request = CreateBatchRequest.model_validate(
        {"name": name, "items": items, "callback_url": callback_url})
    created, _ = create_batch(services, request, {"items": items, "name": name}, None, CONTEXT)
    return created.batch.batch_id, [item.task_id for item in created.items if item.task_id]


def test_progress_counts_and_eta(services: Services) -> None:
    batch_id, task_ids = make_batch(services, [ITEM] * 4)
    complete(services, task_ids[0])
    fail(services, task_ids[1])
    batch = services.batches.get(batch_id)
    assert batch.counts == {"pending": 2, "processing": 0, "waiting_batch": 0, "completed": 1,
                            "failed": 1}
    assert (batch.progress.finished, batch.progress.total) == (2, 4)
    assert batch.started_at is not None
    assert services.batches.unfinished_ahead(batch_id) == (2, 2)


def test_eta_follows_the_pools_capacity(app_env, redis_client: redis.Redis) -> None:
    app_env(TAGGER="gemini")
    client = functions_framework.create_app("api", "main.py").test_client()
    batch_id = post_batch(client, [ITEM] * 6).get_json()["data"]["batch"]["batch_id"]
    assert client.get(f"/api/v1/batches/{batch_id}").get_json()["data"]["eta_s"] is None
    from shared.accounts.importer import AccountEntry, import_accounts

    import_accounts(redis_client, [AccountEntry(
        api_key="AIzaSyBATCH" + "0" * 20, daily_limit=1000, minute_limit=6, username="u",
        password="pw", phone="", email="")])
    eta = client.get(f"/api/v1/batches/{batch_id}").get_json()["data"]["eta_s"]
    assert eta == pytest.approx(60.0)  # six tasks at six a minute


def test_the_batch_callback_fires_once_when_every_item_finished(
        sqlite_services: Services, media_server, receiver_factory) -> None:
    sqlite_services.settings.CALLBACK_SECRET = "cb-secret"
    receiver = receiver_factory([], path="/batch-hook")
    items = [{**ITEM, "url": media_server.url("files/clip.mp4")},
             {**ITEM, "url": media_server.url("files/notes.txt")}]
    batch_id, task_ids = make_batch(sqlite_services, items, receiver.url)
    assert handle_delivery(task_ids[0], sqlite_services.worker).task_status == "completed"
    assert receiver.received == []  # one item still pending
    assert handle_delivery(task_ids[1], sqlite_services.worker).task_status == "failed"
    assert len(receiver.received) == 1
    headers, body = receiver.received[0]
    assert headers["X-Batch-Id"] == batch_id
    expected = "sha256=" + hmac.new(b"cb-secret", body, hashlib.sha256).hexdigest()
    assert hmac.compare_digest(headers["X-Signature"], expected)
    sent = json.loads(body)["data"]
    assert sent["counts"]["completed"] == 1 and sent["counts"]["failed"] == 1
    assert sent["progress"] == {"finished": 2, "total": 2} and sent["finished_at"]
    handle_delivery(task_ids[1], sqlite_services.worker)  # a repeated delivery sends nothing more
    reconcile(sqlite_services.worker)
    assert len(receiver.received) == 1
    stored = sqlite_services.batches.get(batch_id)
    assert (stored.callback_status, stored.callback_attempts) == ("delivered", 1)


def test_finishing_is_exactly_once_under_concurrency(services: Services) -> None:
    batch_id, task_ids = make_batch(services, [ITEM] * 8)
    for task_id in task_ids:
        complete(services, task_id)
    start = threading.Barrier(len(task_ids))
    won: list[str] = []

    def finish(task_id: str) -> None:
        start.wait()
        won.extend(services.batches.finish_for_task(task_id))

    threads = [threading.Thread(target=finish, args=(task_id,)) for task_id in task_ids]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert won == [batch_id]
    assert services.batches.get(batch_id).finished_at is not None


def test_a_finished_batch_says_finished(client) -> None:
    data = post_batch(client, [ITEM, ITEM]).get_json()["data"]
    batch_id, task_ids = data["batch"]["batch_id"], [i["task_id"] for i in data["items"]]
    services = get_services()
    complete(services, task_ids[0])
    assert services.batches.finish_for_task(task_ids[0]) == []
    assert client.get(f"/api/v1/batches/{batch_id}").get_json()["data"]["state"] == "open"
    fail(services, task_ids[1])
    assert services.batches.finish_for_task(task_ids[1]) == [batch_id]
    shown = client.get(f"/api/v1/batches/{batch_id}").get_json()["data"]
    assert shown["state"] == "finished" and shown["finished_at"]
    assert services.batches.row(batch_id)["state"] == "finished"
    listed = client.get("/api/v1/batches").get_json()["data"]["batches"]
    assert [b["state"] for b in listed] == ["finished"]
    states = client.get("/api/v1/openapi.json").get_json()[
        "components"]["schemas"]["Batch"]["properties"]["state"]
    assert states["enum"] == ["creating", "open", "finished"] and "finished" in (
        states["description"])


def test_a_batch_finished_before_the_state_was_written_says_finished(
        services: Services) -> None:
    import sqlalchemy as sa

    from shared.tasks.schema import batches

    batch_id, task_ids = make_batch(services, [ITEM])
    complete(services, task_ids[0])
    with services.store.engine.begin() as conn:  # as an older version finished it
        conn.execute(sa.update(batches).where(batches.c.batch_id == batch_id)
                     .values(finished_at=sa.func.now()))
    assert services.batches.row(batch_id)["state"] == "open"
    assert services.batches.get(batch_id).state == "finished"


def test_the_reconciler_finishes_a_batch_nobody_finished(services: Services) -> None:
    batch_id, task_ids = make_batch(services, [ITEM] * 2)
    for task_id in task_ids:
        complete(services, task_id)  # the store only: nobody checked the batch
    assert services.batches.get(batch_id).finished_at is None
    assert reconcile(services.worker)["batches_finished"] == 1
    assert services.batches.get(batch_id).finished_at is not None
    assert services.batches.get(batch_id).state == "finished"
    assert reconcile(services.worker)["batches_finished"] == 0


def test_a_batch_with_nothing_accepted_is_finished_at_once(services: Services) -> None:
    batch_id, task_ids = make_batch(services, [{"nope": 1}])
    batch = services.batches.get(batch_id)
    assert task_ids == [] and batch.finished_at is not None and batch.progress.total == 0
    assert batch.state == "finished"


# --- exports ----------------------------------------------------------------------------


def test_batch_results_as_csv_and_jsonl(client) -> None:
    items = [ITEM, {"bad": 1}, {**ITEM, "url": "https://cdn.example.com/2.mp4", "uid": "=u7",
                                "platform": "miaobi"}]
    data = post_batch(client, items).get_json()["data"]
    batch_id = data["batch"]["batch_id"]
    services = get_services()
    complete(services, data["items"][0]["task_id"],
             tag_result(tags=("女性", "-1+1", "@SUM(A1)", "+x")))
    fail(services, data["items"][2]["task_id"])
    response = client.get(f"/api/v1/batches/{batch_id}/results?format=csv")
    assert response.status_code == 200 and response.mimetype == "text/csv"
    assert f'filename="batch-{batch_id}.csv"' in response.headers["Content-Disposition"]
    raw = response.get_data()
    assert raw.startswith(b"\xef\xbb\xbf")
    rows = list(csv.reader(io.StringIO(raw.decode("utf-8-sig"))))
    assert rows[0][:6] == ["index", "task_id", "url", "status", "error_code", "tags"]
    first, third = rows[1], rows[2]
    assert len(rows) == 3 and first[0] == "0" and third[0] == "2"
    assert first[5] == "女性|-1+1|@SUM(A1)|+x"  # a cell that starts with 女 is safe as is
    assert first[6] == "女性" and first[8] == "'+x"  # tags_vision, tags_content
    assert first[10] == "限时优惠 summary" and float(first[11]) == 6.0
    assert float(first[12]) == pytest.approx(0.0012)
    assert (third[3], third[4]) == ("failed", "video_unreadable")
    assert rows[0][-4:] == ["message", "uid", "platform", "created_at"]
    assert first[-4:-1] == ["", "", "rpa"] and first[-1].endswith("Z")
    assert third[-4:-1] == ["broken", "'=u7", "miaobi"]  # uid escaped like any cell
    lines = client.get(f"/api/v1/batches/{batch_id}/results?format=jsonl").get_data()
    records = [json.loads(line) for line in lines.decode().splitlines()]
    assert [r["index"] for r in records] == [0, 2]
    assert records[0]["dimensions"] == {"vision": ["女性"], "content": ["+x"]}
    assert records[0]["tags"][0] == "女性" and records[1]["status"] == "failed"
    assert (records[1]["message"], records[1]["uid"], records[1]["platform"]) == (
        "broken", "=u7", "miaobi")
    assert records[0]["message"] is None and records[0]["uid"] is None
    task = client.get(f"/api/v1/task/{records[1]['task_id']}").get_json()["data"]
    assert records[1]["created_at"] == task["created_at"]  # the API's own spelling
    default = client.get(f"/api/v1/batches/{batch_id}/results")
    assert default.mimetype == "application/x-ndjson"


def test_formula_cells_are_escaped() -> None:
    from shared.tasks.export import csv_cell

    for dangerous in ("=1+1", "+1", "-1", "@x", "\tx", "\rx"):
        assert csv_cell(dangerous) == "'" + dangerous
    assert csv_cell("女性") == "女性" and csv_cell(6.0) == 6.0


@pytest.mark.parametrize("path", ["/api/v1/tasks/export?format=xml",
                                  "/api/v1/batches/{id}/results?format=xlsx"])
def test_an_unknown_export_format_is_400(client, path: str) -> None:
    batch_id = post_batch(client, [ITEM]).get_json()["data"]["batch"]["batch_id"]
    body = client.get(path.format(id=batch_id)).get_json()
    assert body["code"] == 400 and body["message"].startswith("format: unknown format")


def test_task_export_with_filters(client) -> None:
    services = get_services()
    made = [client.post("/api/v1/task/create", json={**ITEM, "uid": uid, "platform": p,
                                                     "env": env}).get_json()["task_id"]
            for uid, p, env in (("a", "rpa", "develop"), ("b", "miaobi", "production"),
                                ("a", "rpa", "production"))]
    complete(services, made[0])

    def exported(query: str) -> list[str]:
        response = client.get(f"/api/v1/tasks/export?{query}")
        assert response.status_code == 200, response.get_data()
        return [json.loads(line)["task_id"] for line in response.get_data().splitlines()]

    assert exported("") == made
    assert exported("status=completed") == [made[0]]
    assert exported("platform=miaobi") == [made[1]]
    assert exported("uid=a&env=production") == [made[2]]
    assert exported("since=2000-01-01T00:00:00Z&until=2999-01-01") == made
    assert exported("since=2999-01-01T00:00:00%2B08:00") == []
    csv_rows = client.get("/api/v1/tasks/export?format=csv&uid=b").get_data().decode("utf-8-sig")
    header, row = csv.reader(io.StringIO(csv_rows))
    assert (header[0], row[0]) == ("task_id", made[1])
    shown = dict(zip(header, row, strict=True))
    assert (shown["uid"], shown["platform"], shown["message"]) == ("b", "miaobi", "")
    record = json.loads(client.get("/api/v1/tasks/export?uid=b").get_data())
    assert (record["uid"], record["platform"]) == ("b", "miaobi")
    assert record["created_at"] == client.get(f"/api/v1/task/{made[1]}").get_json()[
        "data"]["created_at"]


@pytest.mark.parametrize(("query", "field"), [
    ("status=done", "status"), ("platform=nope", "platform"), ("env=moon", "env"),
    ("since=yesterday", "since"), ("until=2020-13-01", "until"), ("until=0.5", "until"),
    ("since=2021-01-02&until=2021-01-01", "until"), ("uid=" + "u" * 65, "uid"),
    ("colour=red", "colour"), ("status=failed&status=completed", "status"),
])
def test_bad_export_filters_are_400_naming_the_field(client, query: str, field: str) -> None:
    body = client.get(f"/api/v1/tasks/export?{query}").get_json()
    assert body["code"] == 400 and body["message"].startswith(f"{field}:")


def test_exports_are_read_in_chunks(services: Services) -> None:
    from shared.tasks.export import EXPORT_COLUMNS

    batch_id, task_ids = make_batch(services, [ITEM] * 5)
    chunks = list(services.queries.export_rows(EXPORT_COLUMNS, chunk=2))
    assert [len(chunk) for chunk in chunks] == [2, 2, 1]
    assert [row["task_id"] for chunk in chunks for row in chunk] == task_ids
    in_batch = list(services.batches.task_rows(batch_id, EXPORT_COLUMNS, chunk=3))
    assert [[row["item_index"] for row in chunk] for chunk in in_batch] == [[0, 1, 2], [3, 4]]


# --- subtitles --------------------------------------------------------------------------


def test_subtitles_from_the_key_moments(client) -> None:
    task_id = client.post("/api/v1/task/create", json=ITEM).get_json()["task_id"]
    pending = client.get(f"/api/v1/task/{task_id}/subtitles.vtt")
    assert pending.status_code == 409 and pending.get_json()["message"].startswith("task_id:")
    moments = [KeyMoment(start_s=3.5, end_s=5.25, description="人声", tags=["人声"]),
               KeyMoment(start_s=0.0, end_s=2.0, description="画面文字：限时优惠¥99"),
               KeyMoment(start_s=62.0, end_s=62.0, description="", tags=["logo", "cta"]),
               KeyMoment(start_s=7.0, end_s=8.0, description="a --> b\n\nc")]
    complete(get_services(), task_id, tag_result(moments=moments))
    vtt = client.get(f"/api/v1/task/{task_id}/subtitles.vtt")
    assert vtt.status_code == 200 and vtt.mimetype == "text/vtt"
    assert vtt.get_data(as_text=True) == (
        "WEBVTT\n\n"
        "1\n00:00:00.000 --> 00:00:02.000\n画面文字：限时优惠¥99\n\n"
        "2\n00:00:03.500 --> 00:00:05.250\n人声\n\n"
        "3\n00:00:07.000 --> 00:00:08.000\na → b\nc\n\n"
        "4\n00:01:02.000 --> 00:01:03.000\nlogo / cta\n")
    srt = client.get(f"/api/v1/task/{task_id.replace('-', '').upper()}/subtitles.srt")
    assert srt.status_code == 200 and srt.mimetype == "application/x-subrip"
    assert srt.get_data(as_text=True).startswith("1\n00:00:00,000 --> 00:00:02,000\n")


def test_subtitles_of_unknown_and_malformed_tasks(client) -> None:
    assert client.get(f"/api/v1/task/{uuid.uuid4()}/subtitles.srt").status_code == 404
    assert client.get("/api/v1/task/nope/subtitles.vtt").status_code == 400
