#!/usr/bin/env bash
# What checkpointing a large output adds to a run, against a plain `cp` of the same file, side by
# side (issue #18 item 4). Usage: benches/checkpoint_cost.sh [R] [MB]   (defaults: 5 runs, 512 MB)
#   cp        `cp big copy` of the MB-sized file (page cache warm) to a new file, then `sync`
#             outside the timing
#   cp-over   `cp big copy` over the copy of the previous round (as the task below does over its
#             last output): on a VM whose free memory the host takes back, a new file's pages
#             can cost far more to fault in than reused ones, so `cp` alone swings by 10x; the
#             two lines together show where a round stood
#   cp+sync   `cp` to a new file with `sync copy` inside the timing (the store fsyncs what it
#             keeps)
#   bare      `wf run` of a task that makes out/big (cp, then one distinct byte appended) and
#             declares no output
#   ckpt      the same task declaring out/big as its (checkpointed) output: a new object per run
#   ckpt-same the same task whose output has content already stored (no byte appended): wf
#             guesses so from its last checkpoint with the same key (same size, 16 sampled
#             blocks equal), hashes it on every core and copies nothing
# The "extra" columns are ckpt - bare and ckpt-same - bare; the budget is extra <= 1.3x cp.
# Wall times (medians) and CPU times (user+sys, medians; of the process and what it reaped, so
# ckpt - bare is wf's own extra work: the task is the same) are printed; on a loaded host trust
# the CPU columns and the ratios inside one round.
# Environment: WF=PATH benchmarks another wf binary (no build); BASE=PATH also runs that binary,
# interleaved in the same rounds on the same file, and prints its line first. PERF=1 (needs
# `perf`) also samples each run at 2 kHz and prints, per binary, the CPU milliseconds of wf's
# busiest thread and of all of wf's threads (the task's cp left out): on a host whose cores are
# busy with other work, wall time follows total CPU; on an idle one, it follows the busiest
# thread (the critical path), which is what the copy/hash overlap shortens.
set -euo pipefail
r=${1:-5}
mb=${2:-512}
root=$(cd "$(dirname "$0")/.." && pwd)
if [ -n "${WF:-}" ]; then
  wf=$WF
else
  cargo build --release -q --manifest-path "$root/Cargo.toml"
  wf="$root/target/release/wf"
fi
bins=(new)
declare -A bin=([new]=$wf)
if [ -n "${BASE:-}" ]; then
  bins=(base new)
  bin[base]=$BASE
fi
tmp=$(mktemp -d "${TMPDIR:-/var/tmp}/wf-ckpt.XXXXXX")
trap 'rm -rf "$tmp"' EXIT
median() { sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
# Run a command; append its wall and CPU (user+sys) seconds to t[$1] and c[$1].
declare -A t c p
timed() {
  local k=$1
  shift
  /usr/bin/time -f '%e %U %S' -o "$tmp/time" "$@" >/dev/null
  read -r e u s <"$tmp/time"
  t[$k]+="$e "
  c[$k]+="$(awk "BEGIN{printf \"%.2f\", $u + $s}") "
  if [ "${PERF:-}" = 1 ] && [ "$k" != cps ] && [ "$k" != cpo ]; then
    # The same command again, sampled at 2 kHz per thread: the busiest thread's and all threads'
    # milliseconds (of wf itself: the task's cp and sh are left out).
    local skip='^$'
    [ "$k" = cp ] || skip=':(cp|sh)$'
    perf record -F 2000 -q -o "$tmp/perf.data" "$@" >/dev/null 2>&1
    p[$k]+="$(perf report -i "$tmp/perf.data" --sort pid -F sample,pid --stdio 2>/dev/null |
      awk -v skip="$skip" '!/^#/ && NF == 2 && $2 !~ skip {n += $1; if ($1 > m) m = $1}
           END {printf "%d/%d ", m / 2, n / 2}')"
  fi
}

head -c "${mb}M" /dev/urandom > "$tmp/big"
for b in "${bins[@]}"; do
  for v in bare ckpt same; do
    mkdir -p "$tmp/$b-$v/out"
    { echo '[workflow]'; echo "name = \"$v\""; echo '[task.make]'
      case $v in
        bare) echo "run = \"cp $tmp/big out/big && printf %s \$WF_RUN_ID >> out/big\"" ;;
        ckpt) echo "run = \"cp $tmp/big out/big && printf %s \$WF_RUN_ID >> out/big\""; echo 'outputs = ["out/big"]' ;;
        same) echo "run = \"cp $tmp/big out/big\""; echo 'outputs = ["out/big"]' ;;
      esac
    } > "$tmp/$b-$v/wf.toml"
  done
  "${bin[$b]}" -q -C "$tmp/$b-same" run --force >/dev/null # its object is stored once, before timing
done

for _ in $(seq 1 "$r"); do
  sync
  timed cp cp "$tmp/big" "$tmp/copy"
  rm -f "$tmp/copy"; sync
  timed cps sh -c "cp '$tmp/big' '$tmp/copy' && sync '$tmp/copy'"
  sync
  timed cpo cp "$tmp/big" "$tmp/copy"
  rm -f "$tmp/copy"; sync
  for b in "${bins[@]}"; do
    timed "$b-bare" "${bin[$b]}" -q -C "$tmp/$b-bare" run --force
    sync
    timed "$b-ckpt" "${bin[$b]}" -q -C "$tmp/$b-ckpt" run --force
    # Keep the disk from filling: only the newest object is needed (with PERF=1 the sampled run,
    # another run id, stored a second new one).
    rm -rf "$tmp/$b-ckpt/.wf/objects"; sync
    timed "$b-same" "${bin[$b]}" -q -C "$tmp/$b-same" run --force
    sync
  done
done
m() { echo "${t[$1]}" | tr ' ' '\n' | grep . | median; }
mc() { echo "${c[$1]}" | tr ' ' '\n' | grep . | median; }
x() { awk "BEGIN{printf \"%.2f\", $1 / $2}"; }
d() { awk "BEGIN{printf \"%.3f\", $1 - $2}"; }
printf 'median of %d runs, %d MB output; wall seconds (CPU seconds, user+sys)\n' "$r" "$mb"
printf 'cp %s (%s)  cp-over %s (%s)  cp+sync %s (%s)\n' "$(m cp)" "$(mc cp)" "$(m cpo)" "$(mc cpo)" "$(m cps)" "$(mc cps)"
for b in "${bins[@]}"; do
  extra=$(d "$(m "$b-ckpt")" "$(m "$b-bare")")
  same=$(d "$(m "$b-same")" "$(m "$b-bare")")
  cextra=$(d "$(mc "$b-ckpt")" "$(mc "$b-bare")")
  csame=$(d "$(mc "$b-same")" "$(mc "$b-bare")")
  printf '%-4s wf bare %s (%s)  ckpt %s (%s)  ckpt-same %s (%s)\n' "$b" \
    "$(m "$b-bare")" "$(mc "$b-bare")" "$(m "$b-ckpt")" "$(mc "$b-ckpt")" "$(m "$b-same")" "$(mc "$b-same")"
  printf '%-4s checkpoint extra: new object %s s = %sx cp (%sx cp-over, %sx cp+sync), CPU %s s = %sx cp'"'"'s; already stored %s s = %sx cp, CPU %s s\n' "$b" \
    "$extra" "$(x "$extra" "$(m cp)")" "$(x "$extra" "$(m cpo)")" "$(x "$extra" "$(m cps)")" "$cextra" "$(x "$cextra" "$(mc cp)")" \
    "$same" "$(x "$same" "$(m cp)")" "$csame"
done
if [ "${PERF:-}" = 1 ]; then
  # Medians of "busiest/all" thread milliseconds.
  mp() { echo "${p[$1]}" | tr ' ' '\n' | grep . | sort -t/ -k1 -n | awk -F/ '{a[NR]=$1; b[NR]=$2} END {i=int((NR+1)/2); print a[i] "/" b[i]}'; }
  printf 'CPU ms, busiest thread/all threads (median): cp %s\n' "$(mp cp)"
  for b in "${bins[@]}"; do
    printf '%-4s wf bare %s  ckpt %s  ckpt-same %s\n' "$b" "$(mp "$b-bare")" "$(mp "$b-ckpt")" "$(mp "$b-same")"
  done
fi
