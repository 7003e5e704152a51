"""A team's caps (issue 36): tasks per UTC day and tasks in flight. Over a cap, create,
the synchronous route and a batch answer 429 with Retry-After and the cap's name, and
nothing is written; other teams are not affected; `vtt-keys caps` sets them."""

from __future__ import annotations

import pytest

from scripts import keys as keys_cli
from shared.services import get_services
from tests.test_team_isolation import api, created, keys, run  # noqa: F401 - fixtures
from tests.test_teams import PEPPER


def caps(*args: str) -> int:
    return keys_cli.main(["caps", "--team", "news", *args])


def test_vtt_keys_caps_sets_and_shows(app_env, redis_client, capsys) -> None:
    app_env(API_KEY_PEPPER=PEPPER)
    assert caps() == 0 and "max_per_day none, max_in_flight none" in capsys.readouterr().out
    assert caps("--max-per-day", "100") == 0
    assert caps("--max-in-flight", "5") == 0
    assert "max_per_day 100, max_in_flight 5" in capsys.readouterr().out
    assert caps("--max-per-day", "none") == 0
    assert "max_per_day none, max_in_flight 5" in capsys.readouterr().out


@pytest.mark.parametrize("value", ["0", "-3", "many"])
def test_a_cap_of_zero_or_not_a_number_is_refused(app_env, redis_client, capsys,
                                                  value: str) -> None:
    app_env(API_KEY_PEPPER=PEPPER)
    with pytest.raises(SystemExit) as exited:
        caps("--max-per-day", value)
    assert exited.value.code == 2 and "--max-per-day" in capsys.readouterr().err


def count_tasks() -> int:
    return sum(get_services().queries.count_by_status().values())


def test_max_per_day(api, keys, capsys) -> None:  # noqa: F811
    assert caps("--max-per-day", "2") == 0
    body = {"url": "https://cdn.example.com/v.mp4", "platform": "rpa"}
    once = {**keys["news"], "Idempotency-Key": "same"}
    assert api.post("/api/v1/task/create", json=body, headers=once).status_code == 200
    assert api.post("/api/v1/task/create", json=body, headers=once).status_code == 200  # replay
    batch = {"name": "b", "items": [body, body]}
    over = api.post("/api/v1/batches", json=batch, headers=keys["news"])
    assert over.status_code == 429 and "max_per_day" in over.get_json()["message"]
    assert count_tasks() == 1  # nothing of the batch written
    assert api.post("/api/v1/task/create", json=body, headers=keys["news"]).status_code == 200
    refused = api.post("/api/v1/task/create", json=body, headers=keys["news"])
    assert refused.status_code == 429 and refused.get_json()["field"] == "team"
    assert "max_per_day (2 tasks created today, 2 so far)" in refused.get_json()["message"]
    assert 1 <= int(refused.headers["Retry-After"]) <= 86400
    synchronous = api.post("/api/v1/vision_to_tag/google", json=body, headers=keys["news"])
    assert synchronous.status_code == 429
    assert count_tasks() == 2
    assert api.post("/api/v1/task/create", json=body, headers=keys["sport"]).status_code == 200


def test_max_in_flight(api, keys, media_server) -> None:  # noqa: F811
    assert caps("--max-in-flight", "1") == 0
    url = media_server.url("files/clip.mp4")
    first = created(api, keys["news"], url)
    body = {"url": url, "platform": "rpa"}
    refused = api.post("/api/v1/task/create", json=body, headers=keys["news"])
    assert refused.status_code == 429 and "max_in_flight is 1" in refused.get_json()["message"]
    assert int(refused.headers["Retry-After"]) == 60
    run(first)  # finished: no longer in flight
    assert created(api, keys["news"], url)
