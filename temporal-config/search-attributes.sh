#!/usr/bin/env sh
# Register the orchestrator's search attributes on a Temporal cluster (the one-shot
# `temporal-setup` service of docker-compose.yml runs it with the admin-tools image; the embedded
# dev stack passes them to `temporal server start-dev` itself). Waits for the cluster, skips the
# attributes already there, fails on any other error. Same list as models/search.py.
set -eu
ADDRESS="${TEMPORAL_ADDRESS:-127.0.0.1:7233}"
NAMESPACE="${TEMPORAL_NAMESPACE:-default}"
tries=0
until temporal operator namespace describe --address "$ADDRESS" --namespace "$NAMESPACE" >/dev/null 2>&1; do
  tries=$((tries + 1))
  if [ "$tries" -ge 60 ]; then
    echo "namespace $NAMESPACE not reachable at $ADDRESS after 120 s" >&2
    exit 1
  fi
  sleep 2
done
existing="$(temporal operator search-attribute list --address "$ADDRESS" --namespace "$NAMESPACE")"
for pair in OfferhubResourceType=Keyword OfferhubStatus=Keyword OfferhubUserIds=KeywordList OfferhubAmountCents=Int; do
  name="${pair%%=*}"
  if printf '%s\n' "$existing" | grep -qw "$name"; then
    echo "search attribute $name: already registered"
    continue
  fi
  temporal operator search-attribute create --address "$ADDRESS" --namespace "$NAMESPACE" \
    --name "$name" --type "${pair#*=}"
  echo "search attribute $name: registered"
done
