#!/usr/bin/env bash
# The CPU-sized real-data comparison quoted in docs/results/aid64_5_5.md: AID at 64 px, 5:5 split, seed 0.
# ResNet34 teacher 60 epochs, ResNet18 students 20 epochs (the teacher needs ~3x the student's
# epochs to be worth distilling at this size). Sequential on purpose: on a 2-core machine two
# trainings side by side are slower in total than one after the other.
#
#   scripts/aid64_cpu.sh AID_DIR OUT_DIR [method ...]
#
# Re-running resumes interrupted runs and skips finished ones. Roughly 3 h for the teacher and
# 10 min per student on 2 CPU cores.
set -euo pipefail
DATA=${1:?usage: scripts/aid64_cpu.sh AID_DIR OUT_DIR [method ...]}
OUT=${2:?usage: scripts/aid64_cpu.sh AID_DIR OUT_DIR [method ...]}
shift 2
METHODS=("$@")
[ ${#METHODS[@]} -gt 0 ] || METHODS=(dkd fitnet sdd crd at kd+ls rkd ofd cat mlld reviewkd)
R=${RSDISTILL:-rsdistill}
SET=(--set data.image_size=64 data.cache=disk train.progress=false)
COMMON=(--data "$DATA" --preset aid)

# a finished run is skipped, an interrupted one resumed, a missing one started
run() { local out=$1; shift; [ -f "$out/metrics.json" ] && return 0
        if [ -f "$out/config.yaml" ]; then $R -q train --resume "$out"; else "$@"; fi; }

T=$OUT/t34
run "$T" $R -q train --model resnet34 --out "$T" "${COMMON[@]}" --set data.train_ratio=0.5 train.epochs=60 \
    data.image_size=64 data.cache=disk train.progress=false
S=("${COMMON[@]}" "${SET[@]}" train.epochs=20)
run "$OUT/vanilla" $R -q train --model resnet18 --split-file "$T/split.json" --out "$OUT/vanilla" "${S[@]}"
run "$OUT/kd" $R -q distill --teacher "$T" --student resnet18 --method kd --out "$OUT/kd" "${S[@]}"
# row 4 of the ablation (w/o IS and DM) is the kd run above: same settings, same loss
$R -q ablate --teacher "$T" --student resnet18 --out "$OUT/ablation" --seeds 0 \
    --rows isdm wo_is wo_dm is_fm3 is_fm5 is_fm7 "${S[@]}"
for m in "${METHODS[@]}"; do
  d=$OUT/${m/+/_}
  run "$d" $R -q distill --teacher "$T" --student resnet18 --method "$m" --out "$d" "${S[@]}"
done
$R table "$T" "$OUT/vanilla" "$OUT/kd" "$OUT"/ablation/*/seed0 \
    $(for m in "${METHODS[@]}"; do d=$OUT/${m/+/_}; [ -f "$d/metrics.json" ] && echo "$d"; done) \
    --baseline "$OUT/vanilla" --out "$OUT/results" --title "AID, 64 px, 5:5 split, seed 0"
