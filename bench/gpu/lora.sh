#!/usr/bin/env bash
# Issue 18's GPU comparison: DPO with LoRA r 16 (alpha 32, all-linear) on a Llama-3.1-8B-shaped model (random bf16
# weights), 2 pairs × 1,024 tokens, the reference forward (adapters off) in every step, with and without activation
# checkpointing; ours against the plain-torch peer (bench/python/peer.py lora: transformers + hand-written LoRA, as PEFT
# computes it; PEFT/TRL are not needed). One process per case, so each peak is its own.
#   bench/gpu/lora.sh APP_DIR OUT_DIR
# APP_DIR: the unpacked `dotnet publish src/Host -r linux-x64 --self-contained -p:TorchBackend=external` folder.
set -u
HERE=$(cd "$(dirname "$0")" && pwd)
APP=${1:?APP_DIR}
OUTDIR=${2:?OUT_DIR}
STEPS=${STEPS:-5}
mkdir -p "$OUTDIR"
TORCH_LIB=$(python3 -c 'import torch,os;print(os.path.dirname(torch.__file__))')/lib
export LD_LIBRARY_PATH=$TORCH_LIB:${LD_LIBRARY_PATH:-}
export PYTHONUNBUFFERED=1
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv | tee "$OUTDIR/gpu.txt"
for ckpt in "" "--gradient-checkpointing"; do
  tag=lora${ckpt:+-ckpt}
  echo "=== $tag: ours"
  timeout 400 "$APP/prefpipe" bench lora 4x1024 --device cuda --model 8b --lora-r 16 --ref-every-step $ckpt --steps "$STEPS" \
    --json "$OUTDIR/ours-$tag.json" > "$OUTDIR/ours-$tag.log" 2>&1
  echo "rc=$?"; grep -E "^  |plan |error|Exception" "$OUTDIR/ours-$tag.log" | head -20
  echo "=== $tag: peer"
  timeout 400 python3 "$HERE/../python/peer.py" lora --model 8b --batch 4 --seq 1024 --lora-r 16 $ckpt --steps "$STEPS" \
    --json "$OUTDIR/peer-$tag.json" > "$OUTDIR/peer-$tag.log" 2>&1
  echo "rc=$?"; grep -E "^  |Error" "$OUTDIR/peer-$tag.log" | head -20
done
