#!/usr/bin/env bash
# Shared by setup.sh, deploy.sh and teardown.sh: settings, --dry-run, idempotent helpers.
# shellcheck disable=SC2034  # variables are used by the scripts that source this file

PROJECT_ID=${PROJECT_ID:-}
REGION=${REGION:-us-central1}
PREFIX=${PREFIX:-vtt}
BUCKET=${BUCKET:-${PROJECT_ID}-${PREFIX}-videos}
QUEUE_NAME=${QUEUE_NAME:-${PREFIX}-tagging}
CACHE_DAYS=${CACHE_DAYS:-7}
POOL_KEYS=${POOL_KEYS:-10}                 # Gemini keys imported into the pool
POOL_MINUTE_LIMIT=${POOL_MINUTE_LIMIT:-10} # requests per minute per key
VPC_CONNECTOR=${VPC_CONNECTOR:-${PREFIX}-connector}
SCHEDULE=${SCHEDULE:-"0 3 * * *"}
TIME_ZONE=${TIME_ZONE:-Asia/Shanghai}

SA_API="${PREFIX}-api"
SA_WORKER="${PREFIX}-worker"
SA_TASKS="${PREFIX}-tasks-invoker"
SA_SCHEDULER="${PREFIX}-scheduler"
SECRETS=(DATABASE_URL REDIS_URL API_TOKENS WORKER_TOKEN)

DRY_RUN=false
for arg in "$@"; do
  case "$arg" in
    --dry-run) DRY_RUN=true ;;
    -h|--help) sed -n '2,/^$/p' "$0"; exit 0 ;;
    *) echo "unknown argument: $arg" >&2; exit 2 ;;
  esac
done

if [ -z "$PROJECT_ID" ]; then
  if $DRY_RUN; then PROJECT_ID=example-project; BUCKET=${PROJECT_ID}-${PREFIX}-videos
  else echo "PROJECT_ID must be set (the Google Cloud project to use)" >&2; exit 2; fi
fi

sa_email() { echo "$1@${PROJECT_ID}.iam.gserviceaccount.com"; }
function_url() { echo "https://${REGION}-${PROJECT_ID}.cloudfunctions.net/$1"; }
secret_name() { echo "${PREFIX}-$(echo "$1" | tr '[:upper:]_' '[:lower:]-')"; }

# Print the command; run it unless --dry-run.
run() {
  printf '+'; printf ' %q' "$@"; printf '\n'
  if ! $DRY_RUN; then "$@"; fi
}

# True when the resource described by the command exists (always false in --dry-run, so
# the dry run prints every creating command).
exists() {
  if $DRY_RUN; then return 1; fi
  "$@" >/dev/null 2>&1
}
