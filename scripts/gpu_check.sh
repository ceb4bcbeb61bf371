#!/usr/bin/env bash
# The GPU check (issue 25, docs/gpu.md): on a machine with one CUDA GPU, in under 10 minutes, the
# tests marked `cuda`, a real-data protocol (an AID subset, ResNet34 -> ResNet18 at 128 px, alone /
# KD / ISDM with AMP) and `benchmarks/run.py --device cuda`. Everything measured goes to
# benchmarks/results/gpu/ (gpu_check.json and .md, the tests' log, the benchmark's tables and
# summary, the protocol's table, logs.tar.gz), with the device, driver, torch version and command.
#
# Two steps:
#   1. Here (a CPU machine with the package registry and ../shared/data/aid150):
#        scripts/gpu_check.sh --prepare
#      fills the git-ignored folder .gpu-carry/ (about 34 MiB) with what travels: the wheels the
#      GPU image lacks (pydantic and what it needs, for Python 3.12; torchdistill for the
#      benchmark's peer) and the AID pack (160 images per class, 128 px JPEG).
#   2. On the GPU machine (the device tool: run with carry [".gpu-carry"] and timeout_s 590):
#        bash scripts/gpu_check.sh
#      installs the wheels into a folder under /tmp (the image's PyTorch stays as it is), runs the
#      project from src/ (PYTHONPATH) with the image's python3, and, where $OUT is set, copies the
#      result files there after every step (the device tool sends $OUT back).
#
#   scripts/gpu_check.sh --dry-run [--results DIR]
#      the same steps on the CPU on tiny synthetic data (a few minutes on one thread), its results
#      in a temporary folder (or DIR), never in benchmarks/results/gpu/. tests/test_gpu_check.py runs it.
#
# Environment: PYTHON (default .venv/bin/python where it exists, else python3), AID_SOURCE (the
# pack's source, default ../shared/data/aid150), GPU_CHECK_SECONDS (the steps' deadline from the
# script's start, default 560).
set -uo pipefail
REPO=$(cd "$(dirname "$0")/.." && pwd)
CARRY=$REPO/.gpu-carry
TORCHDISTILL_VERSION=1.1.5  # as the Makefile's bench targets
# pydantic and what it needs at run time: the versions installed here are those carried
CARRIED=(pydantic pydantic-core annotated-types typing-extensions typing-inspection)

mode=check
RESULTS=
while [ $# -gt 0 ]; do
  case $1 in
    --prepare) mode=prepare ;;
    --dry-run) mode=dry-run ;;
    --results) RESULTS=${2:?--results needs a folder}; shift ;;
    -h|--help) sed -n '2,28p' "$0"; exit 0 ;;
    *) echo "gpu_check.sh: unknown argument '$1' (--prepare, --dry-run, --results DIR)" >&2; exit 2 ;;
  esac
  shift
done
if [ -z "${PYTHON:-}" ]; then
  if [ -x "$REPO/.venv/bin/python" ]; then PYTHON=$REPO/.venv/bin/python; else PYTHON=python3; fi
fi
START=$(date +%s)
COMMAND="bash scripts/gpu_check.sh"
[ "$mode" = check ] || COMMAND+=" --$mode"

# The carried wheels, installed into $1 (never over the image's packages). Fails quietly where
# they do not fit this Python (the dry run under another Python uses its own packages).
install_wheels() {
  local site=$1
  compgen -G "$CARRY/wheels/*.whl" >/dev/null || { echo "no wheels in .gpu-carry/wheels (run scripts/gpu_check.sh --prepare and carry .gpu-carry)"; return 1; }
  rm -rf "$site"
  "$PYTHON" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --disable-pip-version-check \
    --target "$site" "$CARRY"/wheels/*.whl 2>&1 | tail -3
  [ -d "$site/pydantic" ]
}

case $mode in
prepare)
  AID_SOURCE=${AID_SOURCE:-$REPO/../shared/data/aid150}
  [ -d "$AID_SOURCE" ] || { echo "no AID at '$AID_SOURCE': set AID_SOURCE to the aid150 folder" >&2; exit 2; }
  specs=()
  for p in "${CARRIED[@]}"; do
    v=$("$PYTHON" -c "import importlib.metadata as m, sys; print(m.version(sys.argv[1]))" "$p") \
      || { echo "$p is not installed in $PYTHON: its version cannot be chosen" >&2; exit 2; }
    specs+=("$p==$v")
  done
  specs+=("torchdistill==$TORCHDISTILL_VERSION")
  rm -rf "$CARRY/wheels"
  mkdir -p "$CARRY/wheels"
  echo "downloading ${specs[*]} (Python 3.12, manylinux x86_64)"
  # --no-deps: each needed one is named; torchdistill's own (torch, torchvision, numpy, pyyaml,
  # scipy) are in the GPU image
  "$PYTHON" -m pip download -q --disable-pip-version-check --no-deps --only-binary=:all: --python-version 3.12 \
    --implementation cp --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 \
    --platform manylinux2014_x86_64 -d "$CARRY/wheels" "${specs[@]}" || exit 1
  "$PYTHON" "$REPO/scripts/gpu_check.py" pack "$AID_SOURCE" "$CARRY/aid" || exit 1
  size=$(du -sm --apparent-size "$CARRY" | cut -f1)
  echo "$CARRY: $size MiB ($(ls "$CARRY/wheels" | wc -l) wheels, $(find "$CARRY/aid" -name '*.jpg' | wc -l) images)"
  # the working tree and the carried paths travel together, 64 MiB at most
  [ "$size" -le 56 ] || { echo "$CARRY is over 56 MiB: the tree and it must stay under 64 MiB" >&2; exit 1; }
  ;;
dry-run)
  WORK=$(mktemp -d)
  RESULTS=${RESULTS:-$WORK/results}
  export OMP_NUM_THREADS=${OMP_NUM_THREADS:-1}
  pythonpath=$REPO/src
  # under a Python 3.12 the carried wheels are installed as on the GPU machine
  if compgen -G "$CARRY/wheels/*.whl" >/dev/null && install_wheels "$WORK/site" >/dev/null 2>&1; then
    pythonpath=$pythonpath:$WORK/site; site_args=(--site "$WORK/site")
    echo "installed the carried wheels into $WORK/site"
  else
    site_args=()
  fi
  export PYTHONPATH=$pythonpath${PYTHONPATH:+:$PYTHONPATH}
  "$PYTHON" -m rsdistill.cli -q synth "$WORK/synth" --classes 4 --per-class 10 --size 40 || exit 1
  "$PYTHON" "$REPO/scripts/gpu_check.py" pack "$WORK/synth" "$WORK/pack" --per-class 8 --size 32 || exit 1
  "$PYTHON" "$REPO/scripts/gpu_check.py" run --dry-run --results "$RESULTS" --work "$WORK/run" --data "$WORK/pack" \
    "${site_args[@]}" --command "$COMMAND"
  status=$?
  echo "dry run: exit $status in $(( $(date +%s) - START )) s; results in $RESULTS"
  exit $status
  ;;
check)
  SITE=${TMPDIR:-/tmp}/rsdistill-gpu-site
  RESULTS=${RESULTS:-$REPO/benchmarks/results/gpu}
  WORK=$(mktemp -d)
  install_wheels "$SITE" && echo "installed the carried wheels into $SITE" \
    || echo "warning: the carried wheels were not installed; what is missing is reported below"
  export PYTHONPATH=$REPO/src:$SITE${PYTHONPATH:+:$PYTHONPATH}
  # cuBLAS reads it when it starts: the --deterministic runs of the tests need it
  export CUBLAS_WORKSPACE_CONFIG=${CUBLAS_WORKSPACE_CONFIG:-:4096:8}
  [ -d "$CARRY/aid" ] || echo "warning: no AID pack in .gpu-carry/aid: the protocol cannot run"
  "$PYTHON" "$REPO/scripts/gpu_check.py" run --results "$RESULTS" --work "$WORK" --data "$CARRY/aid" \
    --deadline $((START + ${GPU_CHECK_SECONDS:-560})) --site "$SITE" ${OUT:+--copy-to "$OUT"} --command "$COMMAND"
  status=$?
  echo "GPU check: exit $status in $(( $(date +%s) - START )) s; results in $RESULTS"
  exit $status
  ;;
esac
