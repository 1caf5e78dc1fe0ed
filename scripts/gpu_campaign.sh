#!/bin/bash
# One piece of a results campaign on a GPU machine, in under 10 minutes: the same runner as on
# the CPU (scripts/run_results.py), stopped from starting new runs after BUDGET minutes, its
# records written to $OUT/results/<campaign>/ to bring back into results/ (results/README.md).
# Run from the repository root:
#   CONFIG=configs/stft.py VARIANTS=csc,waveform-time SEEDS=0,1,2 STEPS=1500 \
#     CAMPAIGN=frontends-gpu BUDGET=7 bash scripts/gpu_campaign.sh
# Then, here: cp -r <files_at>/results/frontends-gpu results/ (records already made are kept:
# rerunning skips them, so a campaign proceeds in pieces across calls and machines).
# The campaign name should say the machine (default: <out stem>-gpu): a page is built from one
# campaign, and it refuses records of several machines unless --allow_mixed_machines labels it.
set -o pipefail
export PYTHONUNBUFFERED=1 XLA_PYTHON_CLIENT_PREALLOCATE=false
OUT=${OUT:-/tmp/out}; mkdir -p "$OUT"
PY=${PY:-python3}
CONFIG=${CONFIG:-configs/default.py}
OUT_MD=${OUT_MD:-$OUT/results.md}
CAMPAIGN=${CAMPAIGN:-$(basename "${OUT_MD%.md}")-gpu}
RESULTS_ROOT=${RESULTS_ROOT:-$OUT/results}
# Records already brought back for this campaign: copy them in so they are skipped, not redone.
if [ -d "results/$CAMPAIGN" ] && [ "$RESULTS_ROOT" != results ]; then
  mkdir -p "$RESULTS_ROOT" && cp -r "results/$CAMPAIGN" "$RESULTS_ROOT/"
fi
nvidia-smi -L 2>&1 | tee "$OUT/env.log"
args=(--config "$CONFIG" --seeds "${SEEDS:-0}" --workdir_root "${WORKDIR_ROOT:-/tmp/runs}"
      --results_root "$RESULTS_ROOT" --campaign "$CAMPAIGN" --out "$OUT_MD"
      --time_budget_minutes "${BUDGET:-7}")
[ -n "$VARIANTS" ] && args+=(--variants "$VARIANTS")
[ -n "$STEPS" ] && args+=(--steps "$STEPS")
[ -n "$ONLY" ] && args+=(--only "$ONLY")
[ -n "$TITLE" ] && args+=(--title "$TITLE")
# 9.5 minutes at most: a run started just before the budget ran out still has to finish.
timeout -s TERM "${LIMIT_S:-570}" $PY scripts/run_results.py "${args[@]}" 2>&1 | tee "$OUT/campaign.log"
echo "rc=$?"
ls "$RESULTS_ROOT/$CAMPAIGN"
