#!/usr/bin/env bash
# Soak of the journal index (issue #23: sled 0.34.7 can deadlock inside a write). Drives sled with
# wf's heaviest write patterns again and again under a stall detector, and reports tries, hangs
# and the stacks of every hang. docs/performance.md has the numbers and how they were taken.
#
#   benches/index_soak.sh [SECONDS] [RUNS]      (defaults: 180 s of tries, 20000 runs per try)
#
# Each try, in a fresh state directory:
#   synth    the state crate's generator writes RUNS finished runs (4 tasks, checkpoints) through
#            Store::commit, fsync off: many small index batches, never flushed;
#   rebuild  both indexes are deleted and rebuilt from the record log (`wf status`, then
#            `wf history RUN`, which opens the detail index): the replay's big batches;
#   gc       `wf gc --now +400d` prunes every checkpoint but the latest of each task: big prune
#            batches (3 of every 4 checkpoints);
#   hammer   the state crate's `index_hammer` example: 10 s of small batches rewriting the same
#            keys with no flush in between, straight into one index (the deadlock's pattern).
# The stall detector samples each step every 0.2 s: a step whose process used no CPU time and did
# no I/O (/proc/PID/stat, /proc/PID/io) for STALL seconds (default 20) has hung: its threads'
# stacks are saved (gdb), it is killed, and the try counts as a hang. A step that exits 4 with
# "the index stopped responding" was stopped by wf's watchdog: also a hang. The soak also reports
# how many sled IO threads each step started beyond the 7 sled starts at once: sled only adds one
# when more than 7 jobs wait in its IO queue, the precondition of the deadlock (a job queued
# behind more writes than there are threads).
#
# Environment: BIN=DIR holding `wf` and `synth` (default: this checkout's release build, built
# first); LEGACY=1 runs the hammer with wf's sled settings before issue #23 (use it with a BIN
# built before); STEPS="synth rebuild gc hammer" (the default) or a subset; STALL=seconds; LOAD=N adds N background writers (dd with fsync) and N CPU spinners to
# measure on a loaded machine; OUT=DIR keeps the stacks (default: a temporary directory).
set -uo pipefail
secs=${1:-180}
runs=${2:-20000}
stall=${STALL:-20}
root=$(cd "$(dirname "$0")/.." && pwd)
if [ -z "${BIN:-}" ]; then
  cargo build --release -q --manifest-path "$root/Cargo.toml" --bin wf || exit 1
  cargo build --release -q --manifest-path "$root/Cargo.toml" -p wf-state --example synth || exit 1
  BIN="$root/target/release"
  synth="$BIN/examples/synth"
else
  synth="$BIN/synth"
  [ -x "$synth" ] || synth="$BIN/examples/synth"
fi
wf="$BIN/wf"
hammer="$root/target/release/examples/index_hammer"
steps_wanted=${STEPS:-synth rebuild gc hammer}
want() { case " $steps_wanted " in *" $1 "*) return 0 ;; esac; return 1; }
if want hammer; then
  cargo build --release -q --manifest-path "$root/Cargo.toml" -p wf-state --example index_hammer || exit 1
fi
tmp=$(mktemp -d)
out=${OUT:-$tmp/stacks}
mkdir -p "$out"
loaders=()
cleanup() {
  for p in "${loaders[@]}"; do kill "$p" 2>/dev/null; done
  wait 2>/dev/null
  rm -rf "$tmp/try" "$tmp/load"
  [ -z "${OUT:-}" ] && [ -z "$(ls -A "$out")" ] && rm -rf "$tmp"
}
trap cleanup EXIT
if [ "${LOAD:-0}" -gt 0 ]; then
  mkdir -p "$tmp/load"
  for i in $(seq 1 "$LOAD"); do
    (while :; do dd if=/dev/zero of="$tmp/load/f$i" bs=1M count=64 conv=fsync status=none; done) &
    loaders+=($!)
    (while :; do :; done) &
    loaders+=($!)
  done
fi

progress() { # CPU ticks + bytes read and written so far by PID (empty once it is gone)
  local stat io
  stat=$(cat "/proc/$1/stat" 2>/dev/null) || return
  io=$(awk '/^(rchar|wchar):/ {s += $2} END {print s}' "/proc/$1/io" 2>/dev/null)
  echo "$stat" | awk -v io="$io" '{sub(/^.*\) /, ""); print $12 + $13, io}'
}

io_threads() { # the highest N of the `sled-io-N` threads PID has now (-1: none)
  local max=-1 n
  for c in /proc/"$1"/task/*/comm; do
    n=$(cat "$c" 2>/dev/null) || continue
    case "$n" in sled-io-*) n=${n#sled-io-}; [ "$n" -gt "$max" ] && max=$n ;; esac
  done
  echo "$max"
}

hangs=0 tries=0 watchdog=0 extra_max=0 extra_steps=0 steps=0
declare -A step_secs step_extra step_overflows
# Run one step under the detector; returns 0 done, 1 failed, 2 hung.
step() {
  local name=$1; shift
  local t0 last now since max=-1 n rc
  t0=$(date +%s.%N)
  "$@" >"$tmp/try/$name.out" 2>&1 &
  local pid=$!
  last=$(progress "$pid"); since=$(date +%s)
  while kill -0 "$pid" 2>/dev/null; do
    sleep 0.2
    n=$(io_threads "$pid"); [ "$n" -gt "$max" ] && max=$n
    now=$(progress "$pid")
    [ -z "$now" ] && break
    if [ "$now" != "$last" ]; then
      last=$now; since=$(date +%s)
    elif [ $(( $(date +%s) - since )) -ge "$stall" ]; then
      local f="$out/hang-$tries-$name.txt"
      { echo "# try $tries, step $name: no CPU time and no I/O for ${stall}s";
        echo "# state: $(du -sh "$tmp/try/.wf" 2>/dev/null | cut -f1), journal.log $(stat -c %s "$tmp/try/.wf/journal.log" 2>/dev/null) bytes";
        gdb -p "$pid" -batch -ex 'thread apply all bt' 2>/dev/null | grep -E '^(Thread|#)' ; } >"$f"
      kill -9 "$pid" 2>/dev/null; wait "$pid" 2>/dev/null
      echo "HANG in $name (try $tries); stacks in $f"
      return 2
    fi
  done
  wait "$pid"; rc=$?
  step_secs[$name]=$(awk "BEGIN{print ${step_secs[$name]:-0} + $(date +%s.%N) - $t0}")
  steps=$((steps + 1))
  local extra=$(( max > 6 ? max - 6 : 0 ))
  if [ "$extra" -gt 0 ]; then
    extra_steps=$((extra_steps + 1))
    step_overflows[$name]=$(( ${step_overflows[$name]:-0} + 1 ))
  fi
  [ "$extra" -gt "$extra_max" ] && extra_max=$extra
  [ "$extra" -gt "${step_extra[$name]:-0}" ] && step_extra[$name]=$extra
  if [ "$rc" -eq 4 ] && grep -q "index stopped responding" "$tmp/try/$name.out"; then
    watchdog=$((watchdog + 1))
    echo "HANG in $name (try $tries): stopped by wf's watchdog"
    return 2
  fi
  if [ "$rc" -ne 0 ]; then
    echo "FAILED $name (try $tries, exit $rc): $(tail -1 "$tmp/try/$name.out")"
    return 1
  fi
  return 0
}

# The soak's stall detector, not wf's watchdog, should catch a hang (so its stacks are taken).
export WF_INDEX_TIMEOUT=1h
end=$(( $(date +%s) + secs ))
started=$(date +%s)
while [ "$(date +%s)" -lt "$end" ]; do
  tries=$((tries + 1))
  rm -rf "$tmp/try"; mkdir -p "$tmp/try"
  s=.wf
  if want hammer; then
    step hammer "$hammer" ${LEGACY:+--legacy} --secs 10 --stall "$stall" --dir "$tmp/try/hammer"
    rc=$?; [ "$rc" -eq 2 ] && hangs=$((hangs + 1))
    # The hammer's own detector exits 3 after printing the stacks.
    if [ "$rc" -eq 1 ] && grep -q '^STALL' "$tmp/try/hammer.out"; then
      hangs=$((hangs + 1)); cp "$tmp/try/hammer.out" "$out/hang-$tries-hammer.txt"
    fi
  fi
  want synth || continue
  step synth "$synth" --runs "$runs" --out "$tmp/try" || { [ $? -eq 2 ] && hangs=$((hangs + 1)); continue; }
  if want rebuild; then
    rm -rf "$tmp/try/$s/journal"
    step rebuild "$wf" --state-dir "$tmp/try/$s" status || { [ $? -eq 2 ] && hangs=$((hangs + 1)); continue; }
    step rebuild_detail "$wf" --state-dir "$tmp/try/$s" history 1 || { [ $? -eq 2 ] && hangs=$((hangs + 1)); continue; }
  fi
  if want gc; then
    step gc "$wf" --state-dir "$tmp/try/$s" gc --now +400d || { [ $? -eq 2 ] && hangs=$((hangs + 1)); continue; }
  fi
done
elapsed=$(( $(date +%s) - started ))
echo "tries $tries, hangs $hangs (stopped by the watchdog: $watchdog) in ${elapsed}s; runs per try $runs; load ${LOAD:-0}"
echo "steps that started extra sled IO threads: $extra_steps of $steps (most in one step: $extra_max)"
for k in hammer synth rebuild rebuild_detail gc; do
  [ -n "${step_secs[$k]:-}" ] && echo "$k: ${step_secs[$k]}s in all; started extra IO threads ${step_overflows[$k]:-0} times (at most ${step_extra[$k]:-0})"
done
[ "$hangs" -gt 0 ] && echo "stacks: $out"
exit 0
