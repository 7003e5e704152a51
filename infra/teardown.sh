#!/usr/bin/env bash
# Remove what setup.sh and deploy.sh created (the bucket only with DELETE_BUCKET=true).
#   PROJECT_ID=my-project [REGION=us-central1] bash infra/teardown.sh [--dry-run]
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=infra/lib.sh
source infra/lib.sh "$@"

gone() {  # run a deleting command, accepting "not found"
  if $DRY_RUN; then run "$@"; else run "$@" || true; fi
}
gone gcloud scheduler jobs delete "$PREFIX-cleanup" --location="$REGION" --quiet
gone gcloud scheduler jobs delete "$PREFIX-reconcile" --location="$REGION" --quiet
gone gcloud scheduler jobs delete "$PREFIX-keys" --location="$REGION" --quiet
for fn in api worker cleanup; do
  gone gcloud functions delete "$PREFIX-$fn" --gen2 --region="$REGION" --quiet
done
gone gcloud tasks queues delete "$QUEUE_NAME" --location="$REGION" --quiet
for name in "${SECRETS[@]}"; do
  gone gcloud secrets delete "$(secret_name "$name")" --quiet
done
for sa in "$SA_API" "$SA_WORKER" "$SA_TASKS" "$SA_SCHEDULER"; do
  gone gcloud iam service-accounts delete "$(sa_email "$sa")" --quiet
done
if [ "${DELETE_BUCKET:-false}" = true ]; then
  gone gcloud storage rm --recursive "gs://$BUCKET"
fi
