#!/usr/bin/env bash
# The DM search of issue 21 (docs/isdm_search.md): where ISDM's margin acts, judged against IS
# alone, KD and the student alone on the CPU protocol's AID at 64 px with a 2:8 split (2,000
# training and 8,000 test images; configs/protocols/aid64_2_8.yaml), and the weak-teacher regime.
#
#   scripts/dm_search.sh AID_DIR OUT STAGE [SEEDS...]
#
# Stages:
#   teacher        the ResNet18 teacher (50 epochs, 2 threads)
#   screen         every variant below at SEEDS (default 0)
#   ROW[,ROW...]   only the named rows at SEEDS (e.g. "is_alone,dm_gap 2 3 4")
#   teacher_short  a barely-better teacher: the same ResNet18 trained for 12 epochs (lr steps at
#                  5/9/11) on the teacher's split
#   weak           KD / ISDM / IS alone / the weak-teacher candidates from OUT/teacher_short at SEEDS
#                  (the student alone is the main one: same split)
#   sensitivity    the article's Tables 5-7 around the defaults (gamma 1/2/8, alpha 0.5/2, beta 0.01/1) at SEEDS
#   sensitivity_wide  the sweep suites' other values (gamma 0.5/16, alpha 0.1, beta 0.05/0.5) at SEEDS
#   table          the tables (rsdistill table --group-seeds) of the main and weak-teacher rows
# SPLIT=5_5 runs the same stages on the protocol's 5:5 split (use another OUT).
# JOBS runs side by side (default 2, one thread each). Re-running skips finished runs and resumes
# interrupted ones. Every student evaluates its 8,000 test images every 5 epochs and at the last
# (train.eval_every, which leaves the trained weights unchanged).
set -euo pipefail
DATA=${1:?usage: scripts/dm_search.sh AID_DIR OUT STAGE [SEEDS...]}
OUT=${2:?}; STAGE=${3:?}; shift 3
SEEDS=("$@"); [ ${#SEEDS[@]} -gt 0 ] || SEEDS=(0)
HERE=$(cd "$(dirname "$0")/.." && pwd)
export R=${RSDISTILL:-rsdistill}
JOBS=${JOBS:-2}
C=$HERE/configs/protocols
# SPLIT=5_5: the CPU protocol's own 5:5 split (docs/protocol.md) instead of 2:8
SPLIT=${SPLIT:-2_8}
COMMON="--data $DATA --config $C/aid64.yaml"
[ "$SPLIT" = 2_8 ] && COMMON="$COMMON --config $C/aid64_2_8.yaml"
STUDENT="$COMMON --config $C/aid64_student.yaml --threads 1 --set train.eval_every=5"

# row name -> method and overrides
declare -A ROWS=(
  [kd]="kd"
  [isdm]="isdm"
  [is_alone]="isdm --set method.margin=none"
  [wo_is]="isdm --set method.scaling=false"
  [dm_right]="isdm --set method.margin_on=teacher_right"
  [dm_pos]="isdm --set method.margin_sign=positive"
  [dm_gap]="isdm --set method.margin_acts=gap"
  [dm_gap_right]="isdm --set method.margin_acts=gap method.margin_on=teacher_right"
  [dm_anneal]="isdm --set method.kappa_end=0"
  [dm_anneal_up]="isdm --set method.kappa=0 method.kappa_end=0.5"
  [isdm_trust]="isdm --set method.trust=advantage"
  [is_trust]="isdm --set method.margin=none method.trust=advantage"
  # the article's sensitivity (Tables 5-7) around the defaults gamma 4, alpha (ce_weight) 1, beta 0.1
  [gamma1]="isdm --set method.gamma=1"
  [gamma2]="isdm --set method.gamma=2"
  [gamma8]="isdm --set method.gamma=8"
  [alpha0.5]="isdm --set method.ce_weight=0.5"
  [alpha2]="isdm --set method.ce_weight=2"
  [beta0.01]="isdm --set method.beta=0.01"
  [beta1]="isdm --set method.beta=1"
  # the rest of the articles' values (configs/suites/sweep_*.yaml)
  [gamma0.5]="isdm --set method.gamma=0.5"
  [gamma16]="isdm --set method.gamma=16"
  [alpha0.1]="isdm --set method.ce_weight=0.1"
  [beta0.05]="isdm --set method.beta=0.05"
  [beta0.5]="isdm --set method.beta=0.5"
)
SCREEN=(alone kd isdm is_alone dm_right dm_pos dm_gap dm_anneal)
WEAK=(kd isdm is_alone isdm_trust is_trust)

source "$(dirname "$0")/run_or_resume.sh"
# QUEUE=FILE appends the commands to FILE (for scripts/queue_worker.sh) instead of running them
queue() { if [ -n "$QUEUE" ]; then cat >> "$QUEUE"; else xargs -P "$JOBS" -d '\n' -I{} env OMP_NUM_THREADS=1 bash -c '{}'; fi; }

lines() {  # teacher_dir out_prefix rows...
  local t=$1 prefix=$2; shift 2
  for s in "${SEEDS[@]}"; do for row in "$@"; do
    if [ "$row" = alone ]; then
      echo "run $OUT/alone/seed$s \$R -q train $STUDENT --split-file $OUT/teacher/split.json --seed $s"
    else
      local spec=${ROWS[$row]:?unknown row $row}
      local method=${spec%% *} extra=""; [ "$spec" != "$method" ] && extra=${spec#* }
      # the --set of the row joins the common one (argparse keeps the last --set otherwise)
      local sets="train.eval_every=5${extra:+ ${extra#--set }}"
      echo "run $prefix/$row/seed$s \$R -q distill ${STUDENT% --set*} --set $sets --teacher $t --method $method --seed $s"
    fi
  done; done
}

case $STAGE in
  teacher) run "$OUT/teacher" env OMP_NUM_THREADS=2 $R -q train $COMMON --config "$C/aid64_teacher.yaml" \
             --seed 0 --threads 2 --set train.eval_every=5 ;;
  screen) lines "$OUT/teacher" "$OUT" "${SCREEN[@]}" | queue ;;
  teacher_short) run "$OUT/teacher_short" env OMP_NUM_THREADS=1 $R -q train $COMMON --config "$C/aid64_teacher.yaml" \
             --seed 0 --threads 1 --split-file "$OUT/teacher/split.json" \
             --set train.epochs=12 "train.milestones=[5,9,11]" train.lr_warmup_epochs=1 train.eval_every=4 ;;
  weak) lines "$OUT/teacher_short" "$OUT/weak" "${WEAK[@]}" | queue ;;
  sensitivity) lines "$OUT/teacher" "$OUT/sens" gamma1 gamma2 gamma8 alpha0.5 alpha2 beta0.01 beta1 | queue ;;
  sensitivity_wide) lines "$OUT/teacher" "$OUT/sens" gamma0.5 gamma16 alpha0.1 beta0.05 beta0.5 | queue ;;
  table)
    for set in main weak; do
      runs=()
      if [ $set = main ]; then dirs=(alone kd isdm is_alone wo_is dm_right dm_pos dm_gap dm_gap_right dm_anneal dm_anneal_up); p=$OUT
      else dirs=(../alone kd isdm is_alone isdm_trust is_trust); p=$OUT/weak; fi
      for d in "${dirs[@]}"; do for r in "$p/$d"/seed*; do [ -f "$r/metrics.json" ] && runs+=("$r"); done; done
      [ ${#runs[@]} -gt 0 ] && $R table "${runs[@]}" --group-seeds --baseline "$p/$([ $set = main ] && echo alone || echo ../alone)" \
        --out "$OUT/results_$set" --title "AID $SPLIT, 64 px ($set teacher): last-epoch test top-1, mean ± std over seeds"
    done ;;
  *) IFS=, read -ra rows <<< "$STAGE"; lines "$OUT/teacher" "$OUT" "${rows[@]}" | queue ;;
esac
