#!/usr/bin/env sh
# Register the orchestrator's search attributes on an existing Temporal cluster
# (the embedded dev stack passes them to `temporal server start-dev` itself).
set -eu
ADDRESS="${TEMPORAL_ADDRESS:-127.0.0.1:7233}"
NAMESPACE="${TEMPORAL_NAMESPACE:-default}"
for pair in OfferhubResourceType=Keyword OfferhubStatus=Keyword OfferhubUserIds=KeywordList OfferhubAmountCents=Int; do
  temporal operator search-attribute create --address "$ADDRESS" --namespace "$NAMESPACE" \
    --name "${pair%%=*}" --type "${pair#*=}" || true
done
