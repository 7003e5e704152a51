"""Settings: defaults, lists, and one clear line for a bad value at start-up."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from shared.config import ConfigError, load_settings


def test_embedded_defaults(monkeypatch) -> None:
    for name in ("DATABASE_URL", "REDIS_URL", "TAGGER", "STORAGE", "PLATFORMS", "API_TOKENS"):
        monkeypatch.delenv(name, raising=False)
    settings = load_settings(_env_file=None)
    assert settings.DATABASE_URL.startswith("sqlite:///") and settings.REDIS_URL == ""
    assert (settings.STORAGE, settings.TAGGER, settings.QUEUE) == ("local", "local", "redis")
    assert settings.PLATFORMS == ["rpa", "miaobi"] and settings.API_TOKENS == []
    assert settings.MAX_VIDEO_MB == 2048 and settings.MAX_ATTEMPTS == 5 and settings.CACHE_DAYS == 7


def test_comma_lists(monkeypatch) -> None:
    monkeypatch.setenv("PLATFORMS", " rpa, miaobi ,douyin")
    monkeypatch.setenv("API_TOKENS", "a,b")
    settings = load_settings(_env_file=None)
    assert settings.PLATFORMS == ["rpa", "miaobi", "douyin"] and settings.API_TOKENS == ["a", "b"]


@pytest.mark.parametrize(("name", "value"), [
    ("MAX_ATTEMPTS", "abc"), ("MAX_ATTEMPTS", "0"), ("TASK_TIMEOUT_S", "5000"),
    ("STORAGE", "s3"), ("DATABASE_URL", "postgres://x"), ("REDIS_URL", "http://x"),
    ("PLATFORMS", ","), ("ALLOW_PRIVATE_URLS", "maybe"), ("WORKER_URL", "ftp://x"),
])
def test_bad_value_names_the_variable(monkeypatch, name: str, value: str) -> None:
    monkeypatch.setenv(name, value)
    with pytest.raises(ConfigError) as caught:
        load_settings(_env_file=None)
    assert str(caught.value).startswith(f"invalid configuration: {name}=")


def test_bad_config_fails_start_up_with_one_line() -> None:
    env = {**os.environ, "MAX_ATTEMPTS": "many", "WORKER_TOKEN": "hunter2"}
    run = subprocess.run([sys.executable, "-c", "import main"], env=env,
                         capture_output=True, text=True)
    assert run.returncode != 0
    lines = run.stderr.strip().splitlines()
    assert lines == ["invalid configuration: MAX_ATTEMPTS='many': Input should be a valid "
                     "integer, unable to parse string as an integer"]


def test_secrets_are_not_echoed(monkeypatch) -> None:
    monkeypatch.setenv("DATABASE_URL", "mysql://root:pa55word@db/x")
    with pytest.raises(ConfigError) as caught:
        load_settings(_env_file=None)
    assert "pa55word" not in str(caught.value)


def test_env_example_lists_every_variable() -> None:
    from shared.config import ROOT, Settings

    listed = {line.split("=", 1)[0] for line in (ROOT / ".env.example").read_text().splitlines()
              if line and not line.startswith("#")}
    assert listed == set(Settings.model_fields)


GROUPS = ("database", "redis", "storage", "queue", "tagging", "pool", "reuse", "intake",
          "search", "api", "callbacks", "housekeeping", "logs")


def test_every_variable_is_in_exactly_one_group() -> None:
    """A field declared in two groups would silently take one of them: each is in one."""
    from shared.config import Settings

    settings = load_settings(_env_file=None)
    owners: dict[str, list[str]] = {}
    for group in GROUPS:
        for name in type(getattr(settings, group)).model_fields:
            owners.setdefault(name, []).append(group)
    assert set(owners) == set(Settings.model_fields)
    assert {name: groups for name, groups in owners.items() if len(groups) > 1} == {}


def test_a_group_holds_its_own_variables_and_nothing_else(monkeypatch) -> None:
    monkeypatch.setenv("DB_POOL_SIZE", "7")
    monkeypatch.setenv("QUEUE", "redis")
    database = load_settings(_env_file=None).database
    assert database.DB_POOL_SIZE == 7 and not hasattr(database, "QUEUE")
    assert not hasattr(database, "API_TOKENS")


def test_env_example_is_ordered_by_the_groups() -> None:
    """Each variable sits under its group's heading (`# ── Title (shared/settings/G.py) ──`)."""
    from shared.config import ROOT

    settings = load_settings(_env_file=None)
    group = ""
    for line in (ROOT / ".env.example").read_text().splitlines():
        if line.startswith("# ──"):
            group = line.split("shared/settings/", 1)[1].split(".py", 1)[0]
        elif line and not line.startswith("#"):
            name = line.split("=", 1)[0]
            assert name in type(getattr(settings, group)).model_fields, (name, group)


@pytest.mark.parametrize(("name", "value", "said"), [
    ("ALLOW_PRIVATE_URLS", "maybe", "ALLOW_PRIVATE_URLS='maybe'"),  # no secret: shown
    ("REDIS_URL", "http://cache:6379/0", "REDIS_URL='http://cache:6379/0'"),
    ("DATABASE_URL", "postgres://app:pa55@db/x", "DATABASE_URL='postgres://app:***@db/x'"),
])
def test_bad_values_are_shown_and_only_secrets_masked(monkeypatch, name, value, said) -> None:
    monkeypatch.setenv(name, value)
    with pytest.raises(ConfigError) as caught:
        load_settings(_env_file=None)
    assert str(caught.value).startswith(f"invalid configuration: {said}")
    assert "pa55" not in str(caught.value)


def test_a_secret_setting_is_masked(monkeypatch) -> None:
    from shared.config import shown

    assert shown("API_TOKENS", "t0k3n") == "***" and shown("CALLBACK_SECRET", "s") == "***"
    assert shown("POOL_ALERT_URL", "https://u:pw@hooks.example/x") == "https://u:***@hooks.example/x"
