"""infra/: shellcheck clean, dry runs that print every gcloud command, entry points and
environment consistent with main.py and the Settings."""

from __future__ import annotations

import ast
import os
import re
import shutil
import subprocess

import yaml

from scripts.stack import ROOT
from shared.config import Settings, load_settings

SCRIPTS = ["infra/setup.sh", "infra/deploy.sh", "infra/teardown.sh", "infra/lib.sh"]


def dry_run(script: str, **env: str) -> str:
    run = subprocess.run(["bash", script, "--dry-run"], cwd=ROOT, capture_output=True,
                         text=True, env={**os.environ, "PROJECT_ID": "demo-project", **env})
    assert run.returncode == 0, run.stderr
    return run.stdout


def main_entry_points() -> set[str]:
    tree = ast.parse((ROOT / "main.py").read_text())
    for node in tree.body:
        if isinstance(node, ast.Assign) and node.targets[0].id == "__all__":
            return {elt.value for elt in node.value.elts}
    raise AssertionError("main.py has no __all__")


def test_shellcheck_clean() -> None:
    assert shutil.which("shellcheck"), "scripts/ensure_services.sh installs shellcheck"
    files = [*SCRIPTS, *[str(p.relative_to(ROOT)) for p in (ROOT / "scripts").glob("*.sh")],
             ".ci/run"]
    run = subprocess.run(["shellcheck", "-x", *files], cwd=ROOT, capture_output=True, text=True)
    assert run.returncode == 0, run.stdout


def test_scripts_are_strict() -> None:
    for script in ("infra/setup.sh", "infra/deploy.sh", "infra/teardown.sh"):
        text = (ROOT / script).read_text()
        assert "set -euo pipefail" in text and "--dry-run" in text


def test_deploy_names_exactly_the_entry_points_of_main() -> None:
    output = dry_run("infra/deploy.sh")
    deployed = set(re.findall(r"--entry-point=(\w+)", output))
    assert deployed == main_entry_points() == {"api", "process_task", "cleanup"}
    lines = {line.split("--entry-point=")[1].split()[0]: line
             for line in output.splitlines() if "--entry-point=" in line}
    assert "--allow-unauthenticated" in lines["api"]
    assert "--no-allow-unauthenticated" in lines["process_task"]
    assert "--no-allow-unauthenticated" in lines["cleanup"]
    assert all("--gen2" in line and "--runtime=python311" in line and "--source=." in line
               for line in lines.values())
    assert "gcloud scheduler jobs create http vtt-cleanup" in output
    assert "--schedule=0\\ 3\\ \\*\\ \\*\\ \\*" in output
    assert "--oidc-service-account-email" in output


def test_reconciler_runs_every_minute_and_api_outlasts_the_sync_route() -> None:
    output = dry_run("infra/deploy.sh")
    reconcile = next(line for line in output.splitlines()
                     if "scheduler jobs create http vtt-reconcile" in line)
    assert "--schedule=\\*\\ \\*\\ \\*\\ \\*\\ \\*" in reconcile
    assert "vtt-cleanup\\?scope=tasks" in reconcile
    batches = next(line for line in output.splitlines()
                   if "scheduler jobs create http vtt-batches" in line)
    assert "vtt-cleanup\\?scope=batches" in batches
    embeddings = next(line for line in output.splitlines()
                      if "scheduler jobs create http vtt-embeddings" in line)
    assert "vtt-cleanup\\?scope=embeddings" in embeddings
    api = next(line for line in output.splitlines() if "--entry-point=api" in line)
    timeout = int(re.search(r"--timeout=(\d+)s", api).group(1))
    assert timeout > Settings().SYNC_TIMEOUT_S
    worker = next(line for line in output.splitlines() if "--entry-point=process_task" in line)
    assert int(re.search(r"--timeout=(\d+)s", worker).group(1)) >= Settings().DISPATCH_DEADLINE_S


def test_disabled_keys_are_probed_every_15_minutes() -> None:
    output = dry_run("infra/deploy.sh")
    job = next(line for line in output.splitlines()
               if "scheduler jobs create http vtt-keys" in line)
    assert "--schedule=\\*/15\\ \\*\\ \\*\\ \\*\\ \\*" in job
    assert "vtt-cleanup\\?scope=keys" in job and "--oidc-service-account-email" in job
    assert "scheduler jobs delete vtt-keys" in dry_run("infra/teardown.sh")


def test_every_env_var_is_a_setting_and_the_cloud_config_is_complete() -> None:
    env = yaml.safe_load((ROOT / "infra/env.example.yaml").read_text())
    output = dry_run("infra/deploy.sh")
    secrets = re.search(r"--set-secrets=(\S+)", output).group(1).replace("\\,", ",")
    secret_names = [item.split("=")[0] for item in secrets.split(",")]
    assert set(env) | set(secret_names) <= set(Settings.model_fields)
    values = {**{k: str(v) for k, v in env.items()},
              "DATABASE_URL": "mysql+pymysql://u:p@/db?unix_socket=/cloudsql/p:r:i",
              "REDIS_URL": "redis://10.0.0.3:6379/0", "API_TOKENS": "t", "WORKER_TOKEN": "w"}
    settings = load_settings(_env_file=None, **values)
    assert (settings.QUEUE, settings.STORAGE, settings.TAGGER) == ("cloudtasks", "gcs", "gemini")


def test_setup_dry_run_prints_everything_it_would_create() -> None:
    output = dry_run("infra/setup.sh", POOL_KEYS="30", POOL_MINUTE_LIMIT="10")
    for expected in ("gcloud services enable", "service-accounts create vtt-api",
                     "service-accounts create vtt-tasks-invoker",
                     "storage buckets create gs://demo-project-vtt-videos",
                     "--lifecycle-file=", "tasks queues create vtt-tagging",
                     "--max-dispatches-per-second=5.00", "secrets create vtt-database-url",
                     "roles/cloudtasks.enqueuer", "roles/iam.serviceAccountUser"):
        assert expected in output, expected


def test_teardown_dry_run_and_missing_project() -> None:
    output = dry_run("infra/teardown.sh")
    assert "functions delete vtt-worker" in output and "gs://" not in output
    env = {k: v for k, v in os.environ.items() if k != "PROJECT_ID"}
    run = subprocess.run(["bash", "infra/deploy.sh"], cwd=ROOT, capture_output=True,
                         text=True, env=env)
    assert run.returncode == 2 and "PROJECT_ID must be set" in run.stderr


def test_gcloudignore_keeps_what_the_functions_need() -> None:
    ignored = (ROOT / ".gcloudignore").read_text().split()
    for needed in ("main.py", "functions/", "shared/", "requirements.txt"):
        assert needed not in ignored
    assert "tests/" in ignored and ".venv/" in ignored
