#!/usr/bin/env bash
# Issue 18's CPU memory check: one DPO step (stored reference log-probs) per process — full fine-tuning, LoRA r 16
# (alpha 32, all-linear) and LoRA + activation checkpointing on the demo (0.8M), small (45M) and 100m shapes — so each
# case's VmHWM is its own, with the memory plan's estimate beside it. Run from the repository root after
# `dotnet build src/Host -c Release`; one case at a time (the 100m cases take minutes each on 2 cores).
#   bench/cpu/lora.sh OUT_DIR [SHAPE…]
set -u
OUTDIR=${1:?OUT_DIR}
shift
SHAPES=${*:-demo small 100m}
APP=${APP:-src/Host/bin/Release/net10.0/prefpipe.dll}
mkdir -p "$OUTDIR"
for shape in $SHAPES; do
  size=4x128
  [ "$shape" = demo ] && size=8x128
  cases=("--lora-r 0" "--lora-r 16" "--lora-r 16 --gradient-checkpointing")
  [ "$shape" = small ] && cases+=("--lora-r 0 --gradient-checkpointing")
  for args in "${cases[@]}"; do
    tag="${shape}_${size}_$(echo "$args" | tr -d '-' | tr ' ' '_')"
    echo "=== $tag"
    dotnet "$APP" bench lora "$size" --device cpu --model "$shape" $args --steps 1 --warmup 1 --json "$OUTDIR/$tag.json" > "$OUTDIR/$tag.log" 2>&1
    echo "rc=$?"; grep -E "peak memory|planned peak|plan error" "$OUTDIR/$tag.log"
  done
done
