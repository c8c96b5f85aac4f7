#!/usr/bin/env bash
# MPO vs DPO-only (sigmoid and MIPO) vs PPO-only on one pipeline, with one training budget: the same number of
# optimisation steps for every plan (MPO: DPO steps + PPO steps; DPO-only: DPO steps on all pairs; PPO-only: PPO
# steps on all prompts from the SFT policy). Each plan is its own run over the same data stages and seeds; the table
# shows training wall time too, since a PPO step (rollouts + updates) costs more than a DPO step.
#
#   pipelines/compare-plans.sh [pipeline.yaml] [budget-steps]        # default: pipelines/demo.yaml, 40
#   PREFPIPE_STORAGE=/tmp/cmp pipelines/compare-plans.sh              # keep the runs elsewhere
set -euo pipefail
cd "$(dirname "$0")/.."
pipeline=${1:-pipelines/demo.yaml}
budget=${2:-40}
dpo=$(( budget * 5 / 8 ))             # MPO splits the budget 5:3 between the dpo and ppo stages
ppo=$(( budget - dpo ))
tag=$(date -u +%Y%m%d-%H%M%S)
dotnet build -c Release src/Host -v q -nologo >/dev/null
prefpipe() { dotnet src/Host/bin/Release/net10.0/prefpipe.dll "$@"; }

declare -a ids=()
run() {
  local id="cmp-$tag-$1"; shift
  echo "== $id: $*"
  prefpipe run "$pipeline" --run-id "$id" "$@" >/dev/null
  ids+=(--run "$id")
}
run mpo      --set training.plan=mpo --set training.dpo.max_steps=$dpo --set training.ppo.max_steps=$ppo
run dpo      --set training.plan=dpo --set training.dpo.max_steps=$budget
run dpo-mipo --set training.plan=dpo --set training.dpo.max_steps=$budget --set training.dpo.objective.loss_type=mipo
run ppo      --set training.plan=ppo --set training.ppo.max_steps=$budget
prefpipe compare "${ids[@]}"
