#!/usr/bin/env bash
# What a client in another process sees (part of `make bench`): a real `portrait serve` on
# the embedded default (examples/portrait.toml), driven by wrk with Lua scripts that build
# distinct events, and the Redis yardstick for reads measured in the same run.
#
#   1. ingest: wrk posts NDJSON bodies of fresh events for INGEST_SECONDS; then the time
#      until the processor has applied all of them; the lag is sampled while it runs.
#      Compared with the collector alone (BM_CollectorIngest1000) run just before.
#   2. reads: READ_USERS profiles of about 4 KB, read by wrk over keep-alive; then
#      redis-benchmark GET of values of the same size on a redis-server started here.
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=build/release/portrait
INGEST_SECONDS=${INGEST_SECONDS:-10}
READ_SECONDS=${READ_SECONDS:-5}
READ_USERS=${READ_USERS:-2000}
PORT=${PORT:-18931}
REDIS_PORT=${REDIS_PORT:-18932}
URL=http://127.0.0.1:$PORT
WORK=$(mktemp -d)
trap 'kill $SERVER ${REDIS:-} 2>/dev/null || true; wait 2>/dev/null || true; rm -rf "$WORK"' EXIT

metric() {  # sum of a metric's samples in /metrics
  curl -s "$URL/metrics" | awk -v m="$1" '$1 == m || index($1, m "{") == 1 { s += $2 } END { printf "%.0f\n", s }'
}
now_ms() { date +%s%3N; }

floor=$(build/release/bench/fusion_bench --benchmark_filter='CollectorIngest1000' --benchmark_format=json 2>/dev/null |
  awk -F: '/"items_per_second"/ { gsub(/[ ,]/, "", $2); print int($2); exit }')

start_server() {
  rm -rf "$WORK/data"
  "$BIN" serve --config examples/portrait.toml --listen 127.0.0.1:$PORT --data-dir "$WORK/data" >"$WORK/server.log" 2>&1 &
  SERVER=$!
  for _ in $(seq 100); do curl -sf "$URL/healthz" >/dev/null 2>&1 && return 0; sleep 0.1; done
  echo "portrait did not start:"; cat "$WORK/server.log"; exit 1
}

# 1. Ingest from an external generator.
start_server
: >"$WORK/lag"
( while kill -0 $SERVER 2>/dev/null; do metric portrait_processor_lag_events >>"$WORK/lag"; sleep 0.5; done ) &
SAMPLER=$!
t0=$(now_ms)
wrk -t2 -c8 -d"${INGEST_SECONDS}s" -s bench/wrk/post_events.lua "$URL" >"$WORK/wrk_ingest.txt" 2>&1
t_ack=$(now_ms)
accepted=$(metric portrait_events_accepted_total)
while [ "$(metric portrait_processor_events_total)" -lt "$accepted" ]; do sleep 0.05; done
t_done=$(now_ms)
kill $SAMPLER 2>/dev/null || true
max_lag=$(sort -n "$WORK/lag" | tail -1)
refused=$(metric portrait_ingest_backpressure_total)
ack_rate=$((accepted * 1000 / (t_ack - t0)))
e2e_rate=$((accepted * 1000 / (t_done - t0)))
echo "| measure (wrk in its own process, server on the same 2 cores) | value |"
echo "|---|---|"
echo "| $(grep '^wrk:' "$WORK/wrk_ingest.txt") | |"
echo "| events accepted | $accepted |"
echo "| acknowledged events/s | $ack_rate |"
echo "| end to end events/s (until the processor applied every accepted event) | $e2e_rate |"
echo "| drain after wrk stopped | $((t_done - t_ack)) ms |"
echo "| processor lag, largest sample (every 0.5 s) | $max_lag events |"
echo "| refused by backpressure (503) | $refused |"
echo "| collector alone (BM_CollectorIngest1000, same run) | $floor |"
# What an event costs on disk (for sizing, docs/scaling.md): the log's segments, the
# archive (gzip level 1) once the archiver has written every event, the RocksDB profiles.
for _ in $(seq 600); do [ "$(metric portrait_archive_events_total)" -ge "$accepted" ] && break; sleep 0.1; done
bytes_of() { du -sb "$1" 2>/dev/null | awk '{ print $1 }'; }
echo "| bytes per event: events log / archive (gzip 1) / RocksDB profiles | $(awk -v l="$(bytes_of "$WORK/data/log/events")" -v a="$(bytes_of "$WORK/data/archive")" -v p="$(bytes_of "$WORK/data/profiles")" -v n="$accepted" 'BEGIN { printf "%.0f / %.0f / %.0f", l / n, a / n, p / n }') |"
kill $SERVER; wait $SERVER 2>/dev/null || true

# 2. Reads of ~4 KB profiles: 40 clicks (distinct items) and their categories per user.
start_server
awk -v users="$READ_USERS" 'BEGIN {
  ts = 1720000000000
  for (u = 0; u < users; u++) {
    for (i = 0; i < 40; i++) {
      printf "{\"id\":\"r%d-%d\",\"uid\":\"u%d\",\"type\":\"click\",\"ts\":%.0f,\"channel\":\"c%d\",\"props\":{\"item_id\":%d,\"category_id\":%d}}\n",
        u, i, u, ts + u * 100 + i, u % 8, 1000000 + u * 40 + i, (u + i) % 60
    }
  }
}' | split -l 1000 - "$WORK/body."
for f in "$WORK"/body.*; do
  curl -s -XPOST "$URL/v1/events" --data-binary @"$f" | grep -q '"rejected":\[\]' || { echo "read set-up: a body was refused"; exit 1; }
done
accepted=$(metric portrait_events_accepted_total)
while [ "$(metric portrait_processor_events_total)" -lt "$accepted" ]; do sleep 0.05; done
size=$(curl -s "$URL/v1/profiles/u1" | wc -c)
USERS=$READ_USERS wrk -t2 -c16 -d"${READ_SECONDS}s" --latency -s bench/wrk/read_profiles.lua "$URL" >"$WORK/wrk_read.txt" 2>&1
reads=$(awk '/Requests\/sec/ { print int($2) }' "$WORK/wrk_read.txt")
p99=$(awk '$1 == "99%" { print $2 }' "$WORK/wrk_read.txt")
kill $SERVER; wait $SERVER 2>/dev/null || true

redis-server --port $REDIS_PORT --bind 127.0.0.1 --save "" --appendonly no --daemonize no >"$WORK/redis.log" 2>&1 &
REDIS=$!
for _ in $(seq 50); do redis-cli -p $REDIS_PORT ping >/dev/null 2>&1 && break; sleep 0.1; done
redis-benchmark -p $REDIS_PORT -t set,get -d "$size" -c 16 -n 300000 -r 2000 --csv >"$WORK/redis.csv" 2>/dev/null
redis_get=$(awk -F'","' '/^"GET"/ { print int($2) }' "$WORK/redis.csv")
redis_p99=$(awk -F'","' '/^"GET"/ { gsub(/"/, "", $7); print $7 }' "$WORK/redis.csv")
echo "| profile of $size bytes: reads/s with wrk -t2 -c16 (p99) | $reads ($p99) |"
echo "| redis-benchmark -t get -d $size -c 16 on the same machine: GET/s (p99 ms) | $redis_get ($redis_p99) |"
echo
awk -v e="$e2e_rate" -v f="$floor" -v l="$max_lag" 'BEGIN { printf "target 1 (wrk): end to end / collector alone = %d / %d = %.2f (aim >= 0.6), largest lag %d events\n", e, f, e / f, l }'
awk -v r="$reads" -v g="$redis_get" -v p="$p99" 'BEGIN { printf "target 3 (wrk): profile reads / redis GET of the same size = %d / %d = %.2f (aim >= 1.0), p99 %s (aim <= 1 ms)\n", r, g, r / g, p }'
