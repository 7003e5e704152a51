"""Teams' scoped API keys (issue 36, part 1): the key store, `vtt-keys`, the scope of each
endpoint, and the bad inputs: revoked keys, missing scopes, bad team names, keys in the
query string, a flood of wrong keys from one address."""

from __future__ import annotations

import logging

import functions_framework
import pytest
import redis

from functions.api import ENDPOINTS
from functions.http import client_address
from scripts import keys as keys_cli
from shared import redis_keys
from shared.config import ConfigError, load_settings
from shared.errors import InvalidInput, NotConfigured, Unauthenticated
from shared.teams.keys import KEY_FORM, KeyStore, Scope, check_team, parse_scopes

PEPPER = "p" * 16 + "epper-for-tests-only-0123456789"
VALID = {"url": "https://cdn.example.com/v.mp4", "platform": "rpa"}


def bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


@pytest.fixture
def store(redis_client: redis.Redis) -> KeyStore:
    return KeyStore(redis_client, PEPPER)


@pytest.fixture
def teams_app(app_env, redis_client: redis.Redis):
    """The API with a pepper; keys made with the same store the API reads."""
    app_env(API_KEY_PEPPER=PEPPER, AUTH_FAILURE_LIMIT=20, AUTH_FAILURE_WINDOW_S=60)
    return functions_framework.create_app("api", "main.py").test_client()


def everything_in(client: redis.Redis) -> str:
    """Every Redis key name and value, as one text: where a secret must not be."""
    parts = []
    for name in client.scan_iter():
        parts.append(name)
        kind = client.type(name)
        if kind == "hash":
            parts.extend(f"{k}={v}" for k, v in client.hgetall(name).items())
        elif kind == "set":
            parts.extend(client.smembers(name))
        elif kind == "string":
            parts.append(client.get(name) or "")
    return "\n".join(parts)


def test_every_endpoint_that_needs_a_key_names_its_scope() -> None:
    for endpoint in ENDPOINTS:
        assert endpoint.public or endpoint.scope in set(Scope), endpoint.path
    admin = {e.path for e in ENDPOINTS if e.scope == Scope.ADMIN and e.method != "DELETE"}
    assert all(path.startswith(("/api/v1/accounts", "/api/v1/stats")) for path in admin)
    assert {e.handler.__name__ for e in ENDPOINTS if e.scope == Scope.SUBMIT} >= {
        "create", "retry", "create_batch", "tag_now"}  # uploads join when they are merged


def test_the_document_says_each_operations_scope(teams_app) -> None:
    paths = teams_app.get("/api/v1/openapi.json").get_json()["paths"]
    create = paths["/api/v1/task/create"]["post"]
    assert create["x-scope"] == "submit" and "`submit`" in create["description"]
    assert paths["/api/v1/accounts"]["get"]["x-scope"] == "admin"
    assert paths["/api/v1/tasks"]["get"]["x-scope"] == "read"
    assert {"401", "403", "429"} <= set(paths["/api/v1/tasks"]["get"]["responses"])
    assert "x-scope" not in paths["/healthz"]["get"]


def test_a_key_is_stored_as_a_peppered_hash_only(store: KeyStore, redis_client) -> None:
    key = store.create("marketing", parse_scopes("submit,read"), "uploader")
    match = KEY_FORM.match(key)
    assert match
    stored = everything_in(redis_client)
    assert match["secret"] not in stored and key not in stored
    assert match["id"] in stored  # the public part names the record
    caller = store.verify(key)
    assert caller and caller.team == "marketing" and caller.key_id == match["id"]
    assert caller.scopes == {Scope.SUBMIT, Scope.READ} and not caller.allows(Scope.ADMIN)
    assert store.verify(key[:-1] + ("A" if key[-1] != "A" else "B")) is None
    assert KeyStore(redis_client, PEPPER + "x").verify(key) is None  # another pepper
    assert store.verify("vtt_000000000000_" + "a" * 43) is None  # unknown id
    assert store.verify("not-a-key") is None


def test_a_revoked_key_says_so_only_to_its_holder(store: KeyStore) -> None:
    key = store.create("ops", parse_scopes("read"))
    key_id = KEY_FORM.match(key)["id"]
    assert store.revoke(key_id).revoked_at
    with pytest.raises(Unauthenticated, match="revoked"):
        store.verify(key)
    assert store.verify(f"vtt_{key_id}_" + "z" * 43) is None  # a guess learns nothing
    assert store.any()  # the record stays: revoking the last key does not open the API


def test_no_pepper_no_scoped_key(redis_client) -> None:
    with pytest.raises(NotConfigured, match="API_KEY_PEPPER"):
        KeyStore(redis_client, "").create("ops", parse_scopes("read"))


@pytest.mark.parametrize(("team", "said"), [
    ("", "team: empty"), ("   ", "team: empty"), ("t" * 33, "33 characters, at most 32"),
    ("Marketing", "lowercase"), ("a/b", "lowercase"), ("-x", "starting with"),
])
def test_bad_team_names_are_refused(team: str, said: str) -> None:
    with pytest.raises(InvalidInput, match=said):
        check_team(team)


@pytest.mark.parametrize(("scopes", "said"), [("", "none given"), ("read,owner", "'owner'")])
def test_bad_scopes_are_refused(scopes: str, said: str) -> None:
    with pytest.raises(InvalidInput, match=said):
        parse_scopes(scopes)


def test_vtt_keys_create_list_revoke(app_env, redis_client, capsys) -> None:
    app_env(API_KEY_PEPPER=PEPPER)
    assert keys_cli.main(["create", "--team", "news", "--scopes", "submit,read",
                          "--name", "ingest bot"]) == 0
    out = capsys.readouterr()
    key = out.out.strip()
    key_id = KEY_FORM.match(key)["id"]
    assert key_id in out.err and key not in out.err
    assert keys_cli.main(["list"]) == 0
    listed = capsys.readouterr().out
    assert key_id in listed and "news" in listed and "read,submit" in listed
    assert KEY_FORM.match(key)["secret"] not in listed
    assert keys_cli.main(["revoke", key_id]) == 0
    assert "revoked" in capsys.readouterr().out
    assert keys_cli.main(["list", "--team", "other"]) == 0
    assert key_id not in capsys.readouterr().out
    assert keys_cli.main(["revoke", "0123456789ab"]) == 4
    assert keys_cli.main(["revoke", "nope"]) == 2


@pytest.mark.parametrize("team", ["", "x" * 33])
def test_vtt_keys_refuses_a_bad_team(app_env, redis_client, capsys, team: str) -> None:
    app_env(API_KEY_PEPPER=PEPPER)
    assert keys_cli.main(["create", "--team", team, "--scopes", "read"]) == 2
    out = capsys.readouterr()
    assert out.out == "" and "team:" in out.err
    assert not redis_client.scard(redis_keys.API_KEY_IDS)


def test_vtt_keys_needs_a_pepper(app_env, redis_client, capsys) -> None:
    app_env(API_KEY_PEPPER="")
    assert keys_cli.main(["create", "--team", "ops", "--scopes", "read"]) == 2
    assert "API_KEY_PEPPER" in capsys.readouterr().err


def test_a_short_pepper_is_refused_and_never_shown() -> None:
    with pytest.raises(ConfigError) as caught:
        load_settings(_env_file=None, API_KEY_PEPPER="short-secret")
    assert "API_KEY_PEPPER='***'" in str(caught.value) and "short-secret" not in str(caught.value)


def test_scoped_keys_on_the_api(teams_app, store: KeyStore) -> None:
    writer = store.create("news", parse_scopes("submit,read"))
    reader = store.create("news", parse_scopes("read"))
    admin = store.create("ops", parse_scopes("admin"))
    created = teams_app.post("/api/v1/task/create", json=VALID, headers=bearer(writer))
    assert created.status_code == 200
    task_id = created.get_json()["task_id"]
    assert teams_app.get(f"/api/v1/task/{task_id}", headers=bearer(reader)).status_code == 200
    refused = teams_app.post("/api/v1/task/create", json=VALID, headers=bearer(reader))
    body = refused.get_json()
    assert refused.status_code == 403 and body["field"] == "scope"
    assert "`submit`" in body["message"] and "(it has read)" in body["message"]
    pool = teams_app.get("/api/v1/accounts", headers={"X-API-Key": writer})
    assert pool.status_code == 403 and "`admin`" in pool.get_json()["message"]
    disable = teams_app.post("/api/v1/accounts/0123456789abcdef/disable", headers=bearer(reader))
    assert disable.status_code == 403
    assert teams_app.get("/api/v1/stats", headers=bearer(admin)).status_code == 200
    assert teams_app.post("/api/v1/task/create", json=VALID,
                          headers=bearer(admin)).status_code == 200  # admin has them all
    assert teams_app.get("/api/v1/tasks").status_code == 401  # a key exists: the API is closed
    assert teams_app.get("/healthz").status_code == 200


def test_revoked_and_unknown_keys_are_401(teams_app, store: KeyStore) -> None:
    key = store.create("news", parse_scopes("read"))
    assert teams_app.get("/api/v1/tasks", headers=bearer(key)).status_code == 200
    store.revoke(KEY_FORM.match(key)["id"])
    revoked = teams_app.get("/api/v1/tasks", headers=bearer(key))
    assert revoked.status_code == 401 and "revoked" in revoked.get_json()["message"]
    assert KEY_FORM.match(key)["secret"] not in revoked.get_data(as_text=True)
    unknown = teams_app.get("/api/v1/tasks", headers=bearer("vtt_000000000000_" + "b" * 43))
    assert unknown.status_code == 401 and "not accepted" in unknown.get_json()["message"]
    missing = teams_app.get("/api/v1/tasks")
    assert missing.status_code == 401 and missing.get_json()["field"] == "Authorization"


def test_api_tokens_stay_admin_keys_beside_scoped_ones(app_env, store: KeyStore) -> None:
    app_env(API_KEY_PEPPER=PEPPER, API_TOKENS="legacy-admin")
    client = functions_framework.create_app("api", "main.py").test_client()
    reader = store.create("news", parse_scopes("read"))
    assert client.get("/api/v1/accounts", headers=bearer("legacy-admin")).status_code == 200
    assert client.get("/api/v1/accounts", headers=bearer(reader)).status_code == 403
    assert client.get("/api/v1/tasks", headers=bearer(reader)).status_code == 200
    assert client.get("/api/v1/tasks", headers=bearer("wrong")).status_code == 401


def test_the_api_stays_open_without_any_key(teams_app) -> None:
    assert teams_app.get("/api/v1/accounts").status_code == 200
    assert teams_app.post("/api/v1/task/create", json=VALID).status_code == 200


@pytest.mark.parametrize("name", ["api_key", "token", "key", "access_token"])
def test_a_key_in_the_query_string_is_refused(teams_app, store, caplog, name: str) -> None:
    key = store.create("news", parse_scopes("read"))
    secret = KEY_FORM.match(key)["secret"]
    caplog.set_level(logging.DEBUG)
    answer = teams_app.get(f"/api/v1/tasks?{name}={key}")
    body = answer.get_json()
    assert answer.status_code == 400 and body["field"] == name
    assert secret not in answer.get_data(as_text=True) and secret not in caplog.text
    also_header = teams_app.get(f"/api/v1/tasks?{name}={key}", headers=bearer(key))
    assert also_header.status_code == 400  # refused, never read, even beside a good header


def test_a_thousand_wrong_keys_from_one_address(teams_app, store, caplog,
                                                redis_client) -> None:
    """Slowed (429 + Retry-After past the limit, a right key included), one log line per
    window with the address and the count, and nothing of any key in the logs."""
    good = store.create("news", parse_scopes("read"))
    caplog.set_level(logging.DEBUG)
    attacker = {"REMOTE_ADDR": "203.0.113.7"}
    guesses = [f"vtt_{n:012x}_{'g' * 39}{n:04d}" for n in range(1000)]
    statuses = [teams_app.get("/api/v1/tasks", headers=bearer(guess),
                              environ_base=attacker).status_code for guess in guesses]
    assert statuses[:20] == [401] * 20 and set(statuses[20:]) == {429}
    slowed = teams_app.get("/api/v1/tasks", headers=bearer(good), environ_base=attacker)
    assert slowed.status_code == 429 and 1 <= int(slowed.headers["Retry-After"]) <= 60
    others = teams_app.get("/api/v1/tasks", headers=bearer(good),
                           environ_base={"REMOTE_ADDR": "198.51.100.9"})
    assert others.status_code == 200  # another address is not held back
    lines = [r.getMessage() for r in caplog.records if "wrong API keys" in r.getMessage()]
    assert len(lines) == 1 and "203.0.113.7" in lines[0] and "20 wrong" in lines[0]
    logged = caplog.text
    assert not any(guess in logged or guess[17:] in logged for guess in guesses)
    assert KEY_FORM.match(good)["secret"] not in logged
    assert "g" * 39 not in everything_in(redis_client)


def test_the_client_address_trusts_only_the_proxies_it_is_told_of(app_env) -> None:
    app = functions_framework.create_app("api", "main.py")
    forwarded = {"X-Forwarded-For": "6.6.6.6, 203.0.113.7"}
    with app.test_request_context("/", headers=forwarded,
                                  environ_base={"REMOTE_ADDR": "10.0.0.1"}):
        import flask

        assert client_address(flask.request, 0) == "10.0.0.1"
        assert client_address(flask.request, 1) == "203.0.113.7"
        assert client_address(flask.request, 2) == "6.6.6.6"
        assert client_address(flask.request, 3) == "10.0.0.1"


def test_a_teams_key_is_masked_wherever_text_is_redacted(store: KeyStore) -> None:
    from shared.redact import redact

    key = store.create("news", parse_scopes("read"))
    key_id, secret = KEY_FORM.match(key)["id"], KEY_FORM.match(key)["secret"]
    shown = redact(f"GET /api/v1/tasks?api_key={key} and {key} alone")
    assert secret not in shown and f"vtt_{key_id}_…" in shown


def test_an_api_without_the_pepper_refuses_team_keys(app_env, store: KeyStore) -> None:
    key = store.create("news", parse_scopes("read"))
    app_env(API_KEY_PEPPER="")
    client = functions_framework.create_app("api", "main.py").test_client()
    answer = client.get("/api/v1/tasks", headers=bearer(key))
    assert answer.status_code == 501 and "API_KEY_PEPPER" in answer.get_json()["message"]
    assert client.get("/api/v1/tasks").status_code == 401  # never an open door


def test_redis_down_fails_closed(app_env) -> None:
    app_env(REDIS_URL="redis://127.0.0.1:1/0", API_KEY_PEPPER=PEPPER)
    client = functions_framework.create_app("api", "main.py").test_client()
    answer = client.get("/api/v1/tasks", headers=bearer("vtt_000000000000_" + "c" * 43))
    assert answer.status_code == 503 and answer.headers["Retry-After"]
    assert "c" * 43 not in answer.get_data(as_text=True)


def test_the_caller_is_attached_to_the_request(teams_app, store: KeyStore) -> None:
    import flask

    from functions.api import GET_TASK, _authenticate
    from functions.http import caller_of
    from shared.services import get_services

    key = store.create("news", parse_scopes("read"))
    with flask.Flask(__name__).test_request_context("/", headers=bearer(key)):
        _authenticate(flask.request, get_services(), GET_TASK)
        caller = caller_of(flask.request)
    assert (caller.team, caller.scopes, caller.key_id) == (
        "news", {Scope.READ}, KEY_FORM.match(key)["id"])
