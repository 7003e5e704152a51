#!/usr/bin/env bash
# One-time (and re-runnable) project setup for vision-to-tag on Google Cloud:
# APIs, service accounts with least privilege, the video bucket with a lifecycle rule,
# the Cloud Tasks queue sized to the key pool, and the Secret Manager entries.
#   PROJECT_ID=my-project [REGION=us-central1] bash infra/setup.sh [--dry-run]
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=infra/lib.sh
source infra/lib.sh "$@"

run gcloud config set project "$PROJECT_ID"
run gcloud services enable cloudfunctions.googleapis.com run.googleapis.com \
  cloudbuild.googleapis.com artifactregistry.googleapis.com cloudtasks.googleapis.com \
  cloudscheduler.googleapis.com secretmanager.googleapis.com sqladmin.googleapis.com \
  redis.googleapis.com vpcaccess.googleapis.com storage.googleapis.com iam.googleapis.com

# --- service accounts ---------------------------------------------------------------
for sa in "$SA_API" "$SA_WORKER" "$SA_TASKS" "$SA_SCHEDULER"; do
  if ! exists gcloud iam service-accounts describe "$(sa_email "$sa")"; then
    run gcloud iam service-accounts create "$sa" --display-name="vision-to-tag $sa"
  fi
done
grant() {  # grant ROLE to SA on the project
  run gcloud projects add-iam-policy-binding "$PROJECT_ID" --condition=None --quiet \
    --member="serviceAccount:$(sa_email "$1")" --role="$2" --format=none
}
grant "$SA_API" roles/cloudtasks.enqueuer
grant "$SA_API" roles/cloudsql.client
grant "$SA_API" roles/secretmanager.secretAccessor
grant "$SA_WORKER" roles/cloudsql.client
grant "$SA_WORKER" roles/secretmanager.secretAccessor
grant "$SA_WORKER" roles/cloudtasks.enqueuer
# the api and worker create tasks that carry the invoker's OIDC identity
for sa in "$SA_API" "$SA_WORKER"; do
  run gcloud iam service-accounts add-iam-policy-binding "$(sa_email "$SA_TASKS")" \
    --member="serviceAccount:$(sa_email "$sa")" --role=roles/iam.serviceAccountUser --quiet
done

# --- bucket: videos and frames, deleted after CACHE_DAYS (the retention archive under
# archive/ is kept: the rule matches videos/ only) ---------------------------------------
if ! exists gcloud storage buckets describe "gs://$BUCKET"; then
  run gcloud storage buckets create "gs://$BUCKET" --location="$REGION" \
    --uniform-bucket-level-access
fi
lifecycle=$(mktemp)
trap 'rm -f "$lifecycle"' EXIT
printf '{"rule": [{"action": {"type": "Delete"}, "condition": {"age": %d, "matchesPrefix": ["videos/"]}}]}\n' \
  "$CACHE_DAYS" > "$lifecycle"
run gcloud storage buckets update "gs://$BUCKET" --lifecycle-file="$lifecycle"
for sa in "$SA_WORKER" "$SA_API"; do
  run gcloud storage buckets add-iam-policy-binding "gs://$BUCKET" \
    --member="serviceAccount:$(sa_email "$sa")" --role=roles/storage.objectAdmin --quiet
done

# --- Cloud Tasks queue, paced to what the key pool can serve ----------------------------
rate=$(awk -v k="$POOL_KEYS" -v m="$POOL_MINUTE_LIMIT" 'BEGIN { r = k * m / 60; if (r < 0.1) r = 0.1; printf "%.2f", r }')
queue_flags=(--location="$REGION" --max-dispatches-per-second="$rate"
  --max-concurrent-dispatches="$((POOL_KEYS * 2))" --max-attempts=10
  --min-backoff=5s --max-backoff=300s --max-doublings=6)
if exists gcloud tasks queues describe "$QUEUE_NAME" --location="$REGION"; then
  run gcloud tasks queues update "$QUEUE_NAME" "${queue_flags[@]}"
else
  run gcloud tasks queues create "$QUEUE_NAME" "${queue_flags[@]}"
fi

# --- secrets (values are added by you: never on a command line or in a log) -------------
for name in "${SECRETS[@]}"; do
  secret=$(secret_name "$name")
  if ! exists gcloud secrets describe "$secret"; then
    run gcloud secrets create "$secret" --replication-policy=automatic
  fi
done
echo "setup done. Add secret values with: printf %s \"\$VALUE\" | gcloud secrets versions add $(secret_name DATABASE_URL) --data-file=-"
