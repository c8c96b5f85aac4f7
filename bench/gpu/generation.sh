#!/usr/bin/env bash
# Issue 20's GPU figures: greedy generation on the Llama-3.2-1B shape (random bf16 weights) at batch 1, 64 and 256,
# ours against transformers' generate() (bench/python/peer.py generate), then our continuous batching against
# batch-at-a-time decoding with sampled, varying lengths (bench continuous: ours only; the peer has no equivalent).
# One process per case.
#   bench/gpu/generation.sh APP_DIR OUT_DIR
# APP_DIR: the unpacked `dotnet publish src/Host -r linux-x64 --self-contained -p:TorchBackend=external` folder.
set -u
HERE=$(cd "$(dirname "$0")" && pwd)
APP=${1:?APP_DIR}
OUTDIR=${2:?OUT_DIR}
mkdir -p "$OUTDIR"
TORCH_LIB=$(python3 -c 'import torch,os;print(os.path.dirname(torch.__file__))')/lib
export LD_LIBRARY_PATH=$TORCH_LIB:${LD_LIBRARY_PATH:-}
export PYTHONUNBUFFERED=1
nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.sm,clocks.max.sm --format=csv | tee "$OUTDIR/gpu.txt"
echo "=== generate: ours"
timeout 400 "$APP/prefpipe" bench generate 1 64 256 --device cuda --model 1b --json "$OUTDIR/ours-generate.json" > "$OUTDIR/ours-generate.log" 2>&1
echo "rc=$?"; grep -E "^  |error|Exception" "$OUTDIR/ours-generate.log" | head -20
echo "=== generate: peer"
timeout 400 python3 "$HERE/../python/peer.py" generate --gen-batches 1 64 256 --json "$OUTDIR/peer-generate.json" > "$OUTDIR/peer-generate.log" 2>&1
echo "rc=$?"; grep -E "^  |Error" "$OUTDIR/peer-generate.log" | head -20
echo "=== continuous: ours"
timeout 400 "$APP/prefpipe" bench continuous 64 256 --device cuda --model 1b --prompt-tokens 128 --new-tokens 128 \
  --json "$OUTDIR/ours-continuous.json" > "$OUTDIR/ours-continuous.log" 2>&1
echo "rc=$?"; grep -E "^  |error|Exception" "$OUTDIR/ours-continuous.log" | head -20
python3 "$HERE/../python/compare.py" "$OUTDIR" | tee "$OUTDIR/compare.txt"
