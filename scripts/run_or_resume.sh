# Sourced by scripts/dm_search.sh and scripts/queue_worker.sh.
# run OUT COMMAND...: skip a finished run, resume an interrupted one (one thread), or start COMMAND --out OUT.
run() {
  local out=$1; shift
  if [ -f "$out/metrics.json" ]; then echo "done:    $out"; return 0; fi
  if [ -f "$out/config.yaml" ]; then echo "resume:  $out"; $R -q train --resume "$out" --threads 1
  else echo "start:   $out"; "$@" --out "$out"; fi
}
export -f run
