#!/usr/bin/env bash
# The CPU protocol on real scenes (docs/protocol.md): the suite configs/suites/cpu_protocol.yaml
# (AID, 5:5 split, 64 px; a ResNet18 teacher and ShuffleNetV2 x0.5 students trained alone, with KD
# and with ISDM over 3 seeds, ISDM's ablation rows, the baselines at one seed), run by
# `rsdistill suite` into OUT, which then writes the report (OUT/report.md, OUT/tables/).
#
#   scripts/protocol.sh AID_DIR OUT [rsdistill suite options ...]
#
# Environment: JOBS runs side by side (default 2), SEEDS (default the suite's "0 1 2"), EXTRA (more
# run-config overrides for every student, e.g. "train.epochs=20" for a quick pass), RSDISTILL
# (default: rsdistill on PATH). Further arguments go to `rsdistill suite`, e.g. --set 'seeds=[0]'.
#
# Re-running skips finished runs and resumes interrupted ones (the suite's cells).
set -euo pipefail
DATA=${1:?usage: scripts/protocol.sh AID_DIR OUT [rsdistill suite options ...]}
OUT=${2:?usage: scripts/protocol.sh AID_DIR OUT [rsdistill suite options ...]}
shift 2
HERE=$(cd "$(dirname "$0")/.." && pwd)
# the suite reads relative paths from its own folder: the data's is made absolute here
ROOT=$(cd "$DATA" 2>/dev/null && pwd) || { echo "protocol.sh: AID_DIR: no folder '$DATA'" >&2; exit 2; }
sets=("datasets.aid.root=$ROOT")
if [ -n "${SEEDS:-}" ]; then sets+=("seeds=[$(echo $SEEDS | tr ' ' ',')]"); fi
for kv in ${EXTRA:-}; do sets+=("student.set.$kv"); done
exec ${RSDISTILL:-rsdistill} suite "$HERE/configs/suites/cpu_protocol.yaml" --out "$OUT" --jobs "${JOBS:-2}" \
  --set "${sets[@]}" "$@"
