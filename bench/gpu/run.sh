#!/usr/bin/env bash
# Runs our benchmarks and the PyTorch peers on one GPU machine, one process per benchmark (so peak memory is per
# benchmark), then prints the ratio table.
#   bench/gpu/run.sh APP_DIR OUT_DIR [bench ...]
# APP_DIR: the unpacked `dotnet publish src/Host -r linux-x64 --self-contained -p:TorchBackend=external` folder.
set -u
HERE=$(cd "$(dirname "$0")" && pwd)
APP=${1:?APP_DIR}
OUTDIR=${2:?OUT_DIR}
shift 2
BENCHES=${*:-"dpo sft optimizer generate refpass reward ppo"}
mkdir -p "$OUTDIR"
TORCH_LIB=$(python3 -c 'import torch,os;print(os.path.dirname(torch.__file__))')/lib
export LD_LIBRARY_PATH=$TORCH_LIB:${LD_LIBRARY_PATH:-}
export PYTHONUNBUFFERED=1
nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.sm,clocks.max.sm --format=csv | tee "$OUTDIR/gpu.txt"
"$APP/prefpipe" doctor 2>&1 | tee "$OUTDIR/doctor.txt"
for b in $BENCHES; do
  echo "=== $b: ours"
  timeout 300 "$APP/prefpipe" bench "$b" --device cuda --json "$OUTDIR/ours-$b.json" > "$OUTDIR/ours-$b.log" 2>&1
  echo "rc=$?"; grep -E "^  |error|Exception" "$OUTDIR/ours-$b.log" | head -20
  echo "=== $b: peer"
  timeout 300 python3 "$HERE/../python/peer.py" "$b" --json "$OUTDIR/peer-$b.json" > "$OUTDIR/peer-$b.log" 2>&1
  echo "rc=$?"; grep -E "^  |Error" "$OUTDIR/peer-$b.log" | head -20
done
python3 "$HERE/../python/compare.py" "$OUTDIR" | tee "$OUTDIR/compare.txt"
