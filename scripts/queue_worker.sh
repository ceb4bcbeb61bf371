#!/usr/bin/env bash
# scripts/queue_worker.sh QUEUEFILE: pops the first line of QUEUEFILE (under a lock) and runs it, until
# the file is empty. Lines come from scripts/dm_search.sh with QUEUE=FILE; lines can be added, removed
# or reordered while workers run. Two workers side by side on 2 cores: one thread each.
#   QUEUE=q.txt scripts/dm_search.sh /data/AID runs/aid28 is_alone,isdm 0 1 2
#   scripts/queue_worker.sh q.txt > w1.out 2>&1 & scripts/queue_worker.sh q.txt > w2.out 2>&1 &
Q=$1
export R=${RSDISTILL:-rsdistill} OMP_NUM_THREADS=1
source "$(dirname "$0")/run_or_resume.sh"
while :; do
  line=$(flock "$Q.lock" bash -c 'l=$(head -n1 "'"$Q"'"); [ -n "$l" ] && sed -i 1d "'"$Q"'"; echo "$l"')
  [ -z "$line" ] && break
  echo "[$(date +%H:%M:%S)] $line" | cut -c1-200
  bash -c "$line"
done
echo "worker done $(date +%H:%M:%S)"
