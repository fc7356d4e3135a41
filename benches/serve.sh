#!/usr/bin/env bash
# `wf serve` at scale (docs/performance.md): a synthetic state of N finished runs (default
# 100,000; the state crate's generator), then the whole request time, as curl measures it
# (connect, request, the full response), of `GET /api/runs?limit=20` and `GET /` (its default
# page of 20 runs), median and worst of R requests each (default 21), and the server's peak RSS.
# The CPU time the server spent per request (user + system, from /proc) is printed too: on a
# busy machine the wall times say more about the other processes than about wf.
# Usage: benches/serve.sh [N] [R]; WF_BENCH_STATE=DIR uses (and keeps) a state made before in DIR
# (made there first when DIR does not exist).
set -euo pipefail
n=${1:-100000}
r=${2:-21}
root=$(cd "$(dirname "$0")/.." && pwd)
cargo build --release -q --manifest-path "$root/Cargo.toml"
cargo build --release -q --manifest-path "$root/Cargo.toml" -p wf-state --example synth
wf="$root/target/release/wf"
tmp=$(mktemp -d)
pid=
cleanup() { if [ -n "$pid" ]; then kill "$pid" 2>/dev/null || true; wait "$pid" 2>/dev/null || true; fi; rm -rf "$tmp"; }
trap cleanup EXIT
state=${WF_BENCH_STATE:-$tmp/state}
if [ ! -d "$state/.wf" ]; then
  s=$(date +%s.%N)
  "$root/target/release/examples/synth" --runs "$n" --out "$state" >/dev/null
  echo "synth: $n runs in $(awk "BEGIN{printf \"%.0f\", $(date +%s.%N) - $s}") s"
fi
"$wf" -C "$state" serve --addr 127.0.0.1:0 >"$tmp/serve.out" 2>&1 &
pid=$!
port=
for _ in $(seq 1 100); do
  port=$(grep -o 'http://127.0.0.1:[0-9]*/' "$tmp/serve.out" | head -1 | sed 's/.*:\([0-9]*\)\/$/\1/') || true
  [ -n "$port" ] && break
  sleep 0.1
done
[ -n "$port" ] || { cat "$tmp/serve.out"; echo "wf serve did not start"; exit 1; }
hz=$(getconf CLK_TCK)
cpu() { awk '{print $14 + $15}' "/proc/$pid/stat"; } # utime + stime, in clock ticks
stats() { sort -n | awk '{a[NR]=$1} END {printf "median %.1f ms, worst %.1f ms", a[int((NR+1)/2)]*1000, a[NR]*1000}'; }
for path in "/api/runs?limit=20" "/"; do
  code=$(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$port$path")
  [ "$code" = 200 ] || { echo "GET $path answered $code"; exit 1; }
  c0=$(cpu)
  t=$(for _ in $(seq 1 "$r"); do curl -s -o /dev/null -w '%{time_total}\n' "http://127.0.0.1:$port$path"; done | stats)
  c1=$(cpu)
  echo "GET $path: $t ($r requests); server CPU $(awk "BEGIN{printf \"%.1f\", ($c1 - $c0) * 1000 / $hz / $r}") ms a request"
done
s=$(date +%s.%N); "$wf" -C "$state" history >/dev/null; e=$(date +%s.%N)
echo "for comparison, \`wf history\` (a process, latest 20): $(awk "BEGIN{printf \"%.1f\", ($e - $s) * 1000}") ms"
echo "wf serve: $(grep -E 'VmHWM|VmRSS' /proc/$pid/status | awk '{printf "%s %.1f MB  ", $1, $2/1024}')"
