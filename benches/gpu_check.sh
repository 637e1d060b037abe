#!/bin/bash
# GPU checks (docs/cluster.md, docs/benchmarks.md): run from the repo root on a CUDA machine (results land in $OUT).
# Sizes can be shrunk for a dry run on CPU: N_EEGS, N_PATIENTS, STEPS, DEVICE, WORKERS.
set -uo pipefail
export PYTHONPATH=$PWD/python PYTHONUNBUFFERED=1 MPLBACKEND=Agg HMS_CACHE_DIR=/tmp/hmscache
OUT=${OUT:-/tmp/gpu_out}; mkdir -p "$OUT"
N_EEGS=${N_EEGS:-1500}; N_PATIENTS=${N_PATIENTS:-200}; STEPS=${STEPS:-30}; DEVICE=${DEVICE:-cuda}; WORKERS=${WORKERS:-12}
log() { echo "=== $(date +%T) $*"; }
log env; nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv 2>&1; nproc
python3 -c "import torch, timm, hms._native; print('torch', torch.__version__, 'timm', timm.__version__, 'cuda', torch.cuda.is_available())"
log ceiling
python3 benches/train_throughput.py --device $DEVICE --model resnet10t --shape 4,128,256 --input-pool 2 --batch-size 32 --modes fp32,fp32+cl,bf16,bf16+cl --steps $STEPS | tee -a $OUT/ceiling.jsonl
python3 benches/train_throughput.py --device $DEVICE --model resnet10t --shape 4,128,256 --input-pool 2 --batch-size 256 --modes fp32,bf16+cl --steps $STEPS | tee -a $OUT/ceiling.jsonl
python3 benches/train_throughput.py --device $DEVICE --model efficientnet_b0 --shape 1,512,512 --batch-size 64 --modes fp32,fp32+cl,bf16,bf16+cl --steps $STEPS | tee -a $OUT/ceiling.jsonl
for m in efficientnet1d wavenet raw2d-resnet10t; do  # raw-EEG models on the default 16 x 2,000 input
  python3 benches/train_throughput.py --device $DEVICE --model $m --shape 16,2000 --batch-size 64 --modes fp32,bf16 --steps $STEPS | tee -a $OUT/ceiling.jsonl
done
log synth
python3 -m hms.synth --out-dir /tmp/synth-big --n-patients $N_PATIENTS --n-eegs $N_EEGS --n-test-eegs 20 --no-progress --overwrite || exit 1
COMMON="--data-dir /tmp/synth-big grouping=row folds=0 epochs=2 stage2_epochs=0 batch_size=64 num_workers=$WORKERS deterministic=false progress=false device=$DEVICE"
log prepare; python3 -m hms.prepare --data-dir /tmp/synth-big grouping=row --splits train 2>&1 | tail -2
log single; python3 -m hms.train $COMMON run_dir=/tmp/runs/single 2>&1 | tail -8
log torchrun1; timeout 300 python3 -m torch.distributed.run --standalone --nproc_per_node=1 -m hms.train $COMMON run_dir=/tmp/runs/ddp1 2>&1 | tail -8
log folds_parallel; timeout 300 python3 -m hms.train ${COMMON/folds=0/folds=0,1} folds_parallel=2 run_dir=/tmp/runs/fp2 2>&1 | tail -8
log effnet; python3 -m hms.train $COMMON preset=efficientnet_b0 run_dir=/tmp/runs/effb0 2>&1 | tail -8
log raw; python3 -m hms.train ${COMMON/--data-dir/input=raw model=efficientnet1d --data-dir} run_dir=/tmp/runs/raw 2>&1 | tail -8
for r in single ddp1 fp2 effb0 raw; do [ -f /tmp/runs/$r/metrics.csv ] && cp /tmp/runs/$r/metrics.csv $OUT/metrics_$r.csv; done
log done
