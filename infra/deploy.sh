#!/usr/bin/env bash
# Deploy the three functions (api public; process_task and cleanup private), give Cloud
# Tasks and Cloud Scheduler the right to call them, and (re)create the daily cleanup job
# and the every-minute task reconciler job.
#   PROJECT_ID=my-project [REGION=us-central1] bash infra/deploy.sh [--dry-run]
# Environment comes from infra/env.yaml (copy infra/env.example.yaml), secrets from
# Secret Manager (infra/setup.sh creates them).
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=infra/lib.sh
source infra/lib.sh "$@"

env_file=infra/env.yaml
if [ ! -f "$env_file" ]; then
  if $DRY_RUN; then env_file=infra/env.example.yaml
  else echo "infra/env.yaml is missing: copy infra/env.example.yaml and fill it in" >&2; exit 2; fi
fi
secrets=""
for name in "${SECRETS[@]}"; do
  secrets+="${secrets:+,}${name}=$(secret_name "$name"):latest"
done

common=(--gen2 --runtime=python311 --region="$REGION" --source=. --env-vars-file="$env_file"
  --set-secrets="$secrets" --vpc-connector="$VPC_CONNECTOR" --egress-settings=private-ranges-only
  --trigger-http)

# name entry-point service-account visibility timeout memory concurrency max-instances
# (concurrency matches functions-framework's 4 threads per vCPU; DB_POOL_SIZE=4 plus as
# many overflow connections covers them, so no request waits for a database connection)
deploy() {
  local visibility=--no-allow-unauthenticated
  if [ "$4" = public ]; then visibility=--allow-unauthenticated; fi
  run gcloud functions deploy "$PREFIX-$1" "${common[@]}" --entry-point="$2" \
    --service-account="$(sa_email "$3")" "$visibility" --timeout="$5" --memory="$6" \
    --cpu=1 --concurrency="$7" --max-instances="$8"
}
# the api runs the synchronous route inside the request: its timeout covers SYNC_TIMEOUT_S
sync_timeout=$(sed -n 's/^SYNC_TIMEOUT_S: *"\{0,1\}\([0-9]*\).*/\1/p' "$env_file")
api_timeout=$(( ${sync_timeout:-120} + 30 ))
deploy api api "$SA_API" public "${api_timeout}s" 512Mi 4 50
deploy worker process_task "$SA_WORKER" private 900s 2Gi 2 20
deploy cleanup cleanup "$SA_WORKER" private 540s 1Gi 1 1

invoker() {  # allow SA to call function NAME
  run gcloud functions add-invoker-policy-binding "$PREFIX-$1" --region="$REGION" \
    --member="serviceAccount:$(sa_email "$2")"
}
invoker worker "$SA_TASKS"
invoker cleanup "$SA_SCHEDULER"

# scheduler JOB SCHEDULE URL: the daily cache cleanup, the task reconciler every minute
# (expired leases, pending tasks whose delivery was lost; the key pool's alerts), and the
# health probes of disabled Gemini keys every 15 minutes
scheduler_job() {
  local flags=(--location="$REGION" --schedule="$2" --time-zone="$TIME_ZONE" --uri="$3"
    --http-method=POST --oidc-service-account-email="$(sa_email "$SA_SCHEDULER")"
    --oidc-token-audience="$(function_url "$PREFIX-cleanup")" --attempt-deadline=540s)
  if exists gcloud scheduler jobs describe "$PREFIX-$1" --location="$REGION"; then
    run gcloud scheduler jobs update http "$PREFIX-$1" "${flags[@]}"
  else
    run gcloud scheduler jobs create http "$PREFIX-$1" "${flags[@]}"
  fi
}
scheduler_job cleanup "$SCHEDULE" "$(function_url "$PREFIX-cleanup")"
scheduler_job reconcile "* * * * *" "$(function_url "$PREFIX-cleanup")?scope=tasks"
scheduler_job keys "*/15 * * * *" "$(function_url "$PREFIX-cleanup")?scope=keys"
scheduler_job batches "*/5 * * * *" "$(function_url "$PREFIX-cleanup")?scope=batches"
scheduler_job embeddings "*/5 * * * *" "$(function_url "$PREFIX-cleanup")?scope=embeddings"
echo "deployed: api at $(function_url "$PREFIX-api")"
