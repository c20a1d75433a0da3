#!/bin/bash
# CPU of a live command-line run at --speed 1 (default base TPS, streaming into the local
# node), over 60 s after the handoff, from /proc (utime+stime): the run's process and the node.
#   scripts/opensearch-node start; bash bench/live_cpu.sh [URL]
set -eu
URL=${1:-http://127.0.0.1:${OPENSEARCH_PORT:-9200}}
OUT=$(mktemp -d)
S=$(date -u -d '-20 min' +%Y-%m-%dT%H:%M:00); E=$(date -u -d '+3 hours' +%Y-%m-%dT%H:%M:00)
NODE=$(cat "${OPENSEARCH_DIR:-.opensearch}/node.pid")
python3 run_sim.py scenarios/baseline.yaml --start "$S" --end "$E" --live --quiet \
    --output-dir "$OUT" --opensearch "$URL" --index bench-live-cpu 2>"$OUT/err.txt" &
PID=$!
until grep -q "handoff" "$OUT/err.txt" 2>/dev/null; do sleep 0.5; done
ticks() { awk '{print $14+$15}' "/proc/$1/stat"; }
t0=$(ticks $PID); n0=$(ticks "$NODE"); w0=$(date +%s.%N)
sleep 60
t1=$(ticks $PID); n1=$(ticks "$NODE"); w1=$(date +%s.%N)
rss=$(awk '/VmRSS/ {print $2}' "/proc/$PID/status")
kill -TERM $PID; wait $PID
python3 -c "w=$w1-$w0; print(f'live run {($t1-$t0)/100/w:.4f} of a core, node {($n1-$n0)/100/w:.4f}, over {w:.0f} s; run RSS {$rss/1024:.0f} MB')"
grep "live:" "$OUT/err.txt" | tail -1
curl -s -XDELETE "$URL/bench-live-cpu" >/dev/null
rm -rf "$OUT"
