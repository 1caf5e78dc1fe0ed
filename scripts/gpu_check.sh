#!/bin/bash
# GPU check for csc-jax on one GPU, run from the repository root: benchmarks of the demo and GPU
# configs (JAX vs PyTorch/asteroid when python3 has torch + asteroid), then the CPU demo trained
# on the GPU with a SIGTERM + resume. Reports go to $OUT (default /tmp/out).
# Usage: bash scripts/gpu_check.sh   (env: PY, STEPS, ROUNDS, T1..T4 = per-part time limits in s)
# On an offline machine, put the missing wheels in .whl/ first; they are installed to /tmp/site.
export PYTHONUNBUFFERED=1 XLA_PYTHON_CLIENT_PREALLOCATE=false
OUT=${OUT:-/tmp/out}; mkdir -p $OUT
PY=${PY:-python3}
if [ -d .whl ] && [ -z "$NOINSTALL" ]; then
  $PY -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl || exit 1
  export PYTHONPATH=/tmp/site:$PWD
fi
S=${STEPS:-20}; R=${ROUNDS:-3}
{ nvidia-smi -L; nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.max.sm --format=csv; $PY -c "import jax, flax, optax, orbax.checkpoint as o; print('jax', jax.__version__, 'flax', flax.__version__, 'optax', optax.__version__, jax.devices())"; } 2>&1 | tee $OUT/env.log
date +%T
# 1. CPU-demo experiment on the GPU: CSC step (sharding/pmap x f32/bf16), demo backbone vs PyTorch, CSC step in the same rounds.
timeout ${T1:-170} $PY benchmark.py --config configs/benchmark.py --mode=train,backbone --backbone=demo \
  --parallel=sharding,pmap --dtype=float32,bfloat16 --pytorch_python=$PY --pytorch_rounds=$R \
  --steps=$S --warmup=3 --out $OUT/gpu_demo.json > $OUT/gpu_demo.log 2>&1; echo "demo rc=$?"; tail -40 $OUT/gpu_demo.log
date +%T
# 2. GPU experiment (configs/gpu.py, its B=8): CSC step f32/bf16; paper backbone (batch 4) vs PyTorch.
timeout ${T2:-170} $PY benchmark.py --config=configs/benchmark.py:gpu --mode=train,backbone --backbone=paper \
  --parallel=sharding --dtype=float32,bfloat16 --pytorch_python=$PY --pytorch_rounds=2 \
  --steps=$((S/2)) --warmup=3 --out $OUT/gpu_big.json > $OUT/gpu_big.log 2>&1; echo "big rc=$?"; tail -40 $OUT/gpu_big.log
date +%T
# 3. The CPU demo (configs/default.py, 600 steps) on the GPU: SIGTERM after 45 s (preemption -> checkpoint), then the same command resumes, finishes and runs the eval protocol.
rm -rf /tmp/w; SECONDS=0
timeout -s TERM ${T3:-45} $PY train.py --config configs/default.py --workdir /tmp/w > $OUT/train.log 2>&1; echo "first rc=$? ${SECONDS}s"
timeout ${T4:-200} $PY train.py --config configs/default.py --workdir /tmp/w >> $OUT/train.log 2>&1; echo "resume rc=$? ${SECONDS}s"
tr '\r' '\n' < $OUT/train.log | grep -v "^train:" | tail -30; ls /tmp/w /tmp/w/checkpoints; cp /tmp/w/eval/results.json $OUT/demo_eval.json 2>/dev/null; cp /tmp/w/metrics.jsonl $OUT/demo_metrics.jsonl 2>/dev/null
date +%T
