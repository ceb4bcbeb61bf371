#!/usr/bin/env bash
# The demo's spread (issue 21, part 4; docs/results.md): how far one run of `make demo` can be
# trusted. The demo's teacher per data seed, then its three students (alone, KD, ISDM) at student
# schedules and thread counts against that fixed teacher, and each student's accuracy on a large
# fresh draw of the same synthetic classes (4,577 images, against the demo's 460).
#
#   scripts/demo_spread.sh OUT STAGE [DATA_SEEDS...]
#
# Stages:
#   teachers           the demo suite's teacher (and its student alone) per data seed, 1 thread;
#                      TEACHER_SET: more suite --set items (e.g. 'teacher.set.train.milestones=[20,30]')
#   SCHEDULE THREADS   the three students per data seed (student seed = data seed) at one of the
#                      schedules below, at THREADS threads (1: JOBS side by side; 2: one at a time)
#   bigtest            a fresh draw (synth seed 100, 200 per class) and every finished student on it
#   table              one line per run: 460-image and 4,577-image top-1
# Schedules (the demo's student: ShuffleNetV2 x0.5, 20 epochs, batch 64, lr warm-up 2):
#   demo   lr 0.1, steps at epochs 6/12/16 (what the demo runs)
#   late   lr 0.1, steps at epochs 10/15
#   b32    batch 32, lr 0.05
#   lr05   lr 0.05
#   b128   batch 128 (lr 0.1: half the steps, each on a gradient half as noisy)
#   lr05late  lr 0.05, steps at epochs 10/15
#   e12    12 epochs, lr 0.05, steps at epochs 6/9
# Re-running skips finished runs. DRY=1 prints the teachers' or a schedule stage's commands instead of running them.
set -euo pipefail
OUT=${1:?usage: scripts/demo_spread.sh OUT STAGE [DATA_SEEDS...]}; STAGE=${2:?}; shift 2
SEEDS=("$@"); [ ${#SEEDS[@]} -gt 0 ] || SEEDS=(0 1 2)
HERE=$(cd "$(dirname "$0")/.." && pwd)
R=${RSDISTILL:-rsdistill}
JOBS=${JOBS:-2}
mkdir -p "$OUT"
teacher() { echo "$OUT/base$1/runs/scenes/8_2/teacher/seed$1"; }
runs() { printf '%s\n' "$OUT"/students/*/t*/d*/* "$OUT"/base*/runs/scenes/8_2/*/seed*; }  # every run made here
evaluated() { echo "$OUT/bigtest/evals/$(echo "${1#"$OUT"/}" | tr / _)"; }  # a run's folder of its bigtest eval

case $STAGE in
teachers)
  for k in "${SEEDS[@]}"; do
    # shellcheck disable=SC2086  # TEACHER_SET: further --set items, split on spaces
    set -- "$HERE/configs/suites/demo.yaml" --out "$OUT/base$k" --set "datasets.scenes.synth.seed=$k" "teacher.seed=$k" \
      "seeds=[$k]" 'methods=[{"name":"alone","method":"ce"}]' set.train.progress=false ${TEACHER_SET:-}
    if [ -n "${DRY:-}" ]; then echo "$R -q suite $*"; continue; fi
    OMP_NUM_THREADS=1 $R -q suite "$@" > "$OUT/base$k.log" 2>&1 &
    while [ "$(jobs -r | wc -l)" -ge "$JOBS" ]; do sleep 5; done
  done
  wait ;;
demo|late|b32|lr05|b128|lr05late|e12)
  THREADS=${1:?usage: scripts/demo_spread.sh OUT SCHEDULE THREADS [DATA_SEEDS...]}; shift
  SEEDS=("$@"); [ ${#SEEDS[@]} -gt 0 ] || SEEDS=(0 1 2)
  case $STAGE in
    demo) SETS="train.lr=0.1" ;; late) SETS="train.milestones=[10,15]" ;;
    b32) SETS="train.batch_size=32 train.lr=0.05" ;; lr05) SETS="train.lr=0.05" ;;
    b128) SETS="train.batch_size=128 train.lr=0.1" ;; lr05late) SETS="train.lr=0.05 train.milestones=[10,15]" ;;
    e12) SETS="train.epochs=12 train.lr=0.05 train.milestones=[6,9]" ;;
  esac
  # the student's settings are the demo suite's student cell, read from the alone run of seed k
  for k in "${SEEDS[@]}"; do
    T=$(teacher "$k"); A=$OUT/base$k/runs/scenes/8_2/alone/seed$k
    for m in ce kd isdm; do
      run=$OUT/students/$STAGE/t$THREADS/d$k/$m
      [ -f "$run/metrics.json" ] && continue
      # an unfinished run starts over: run_or_resume.sh would resume it at 1 thread, the very thing varied here
      [ -n "${DRY:-}" ] || rm -rf "$run"
      if [ $m = ce ]; then echo "$R -q train --config $A/config.yaml --split-file $T/split.json --seed $k --threads $THREADS --set $SETS --out $run"
      else echo "$R -q distill --config $A/config.yaml --split-file $T/split.json --teacher $T --method $m --seed $k --threads $THREADS --set $SETS --out $run"; fi
    done
  done | if [ -n "${DRY:-}" ]; then cat; else xargs -P "$([ "$THREADS" = 1 ] && echo "$JOBS" || echo 1)" -I{} bash -c "{} > /dev/null"; fi ;;
bigtest)
  BIG=$OUT/bigtest
  [ -f "$BIG/split.json" ] || {
    OMP_NUM_THREADS=2 $R -q synth --classes 23 --per-class 200 --size 64 --seed 100 "$BIG/scenes"
    # one image per class stays in "train" (a split needs one); the other 4,577 are the test part
    python3 - "$BIG" <<'EOF'
import json, os, sys
big = sys.argv[1]; root = f"{big}/scenes"
classes = sorted(d for d in os.listdir(root) if os.path.isdir(f"{root}/{d}"))
files = {c: sorted(os.listdir(f"{root}/{c}")) for c in classes}
train = [f"{c}/{files[c][0]}" for c in classes]; test = [f"{c}/{f}" for c in classes for f in files[c][1:]]
json.dump({"version": 1, "seed": 0, "train_ratio": 0.8, "val_ratio": 0.0, "classes": classes,
           "counts": {"train": len(train), "val": 0, "test": len(test)}, "train": train, "val": [], "test": test},
          open(f"{big}/split.json", "w"))
EOF
  }
  for run in $(runs); do
    e=$(evaluated "$run")
    [ -f "$run/metrics.json" ] && [ ! -f "$e/eval.json" ] || continue
    OMP_NUM_THREADS=2 $R -q eval "$run" --data "$BIG/scenes" --split-file "$BIG/split.json" --out "$e"
  done ;;
table)
  for run in $(runs); do
    [ -f "$run/metrics.json" ] || continue
    e=$(evaluated "$run")/eval.json
    python3 -c "import json,sys,os; m=json.load(open(sys.argv[1]+'/metrics.json')); b=sys.argv[3]; \
big=json.load(open(b)).get('top1') if os.path.exists(b) else None; \
print(sys.argv[1].removeprefix(sys.argv[2]+'/'), f\"{m['top1']:.2f}\", '-' if big is None else f'{big:.2f}')" "$run" "$OUT" "$e"
  done ;;
*) echo "scripts/demo_spread.sh: unknown stage '$STAGE' (teachers, demo, late, b32, lr05, b128, lr05late, e12, bigtest, table)" >&2; exit 2 ;;
esac
