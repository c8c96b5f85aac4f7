#!/usr/bin/env bash
# Starts one execution of a prefpipe Container Apps job with other prefpipe arguments, e.g.
#
#   infra/azure/start-job.sh my-rg prefpipe-manual  rerun --run 20250101-030000-ab12 --stage rank
#   infra/azure/start-job.sh my-rg prefpipe-manual  resume --run 20250101-030000-ab12
#   infra/azure/start-job.sh my-rg prefpipe-workers worker --run 20250101-030000-ab12 --stage rank --claim
#   infra/azure/start-job.sh my-rg prefpipe-trainer train dpo ...
#
# An execution override replaces the whole container definition (image, env, mounts), so this reads the job's own
# container, swaps only its args, and starts the execution with that (volumes stay the job's own). Needs az and jq.
set -euo pipefail

if [ $# -lt 3 ]; then
  echo "usage: $0 RESOURCE_GROUP JOB_NAME PREFPIPE_ARGS..." >&2
  exit 2
fi
group=$1
job=$2
shift 2

args_json=$(printf '%s\n' "$@" | jq -R . | jq -s .)
template=$(mktemp --suffix=.json)
trap 'rm -f "$template"' EXIT

az containerapp job show --resource-group "$group" --name "$job" --query properties.template -o json |
  jq --argjson args "$args_json" '{containers: [.containers[0] | .args = $args], initContainers: (.initContainers // [])}' \
  >"$template"

# JSON is YAML: az reads the execution template from it.
az containerapp job start --resource-group "$group" --name "$job" --yaml "$template" --query name -o tsv
