#!/usr/bin/env bash
# What checkpointing a large output adds to a run, against a plain `cp` of the same file, side by
# side (issue #18 item 4). Usage: benches/checkpoint_cost.sh [R] [MB]   (defaults: 5 runs, 512 MB)
#   cp        `cp big copy` of the MB-sized file (page cache warm), then `sync` outside the timing
#   cp+sync   the same with `sync copy` inside the timing (the store fsyncs what it keeps)
#   bare      `wf run` of a task that makes out/big (cp, then one distinct byte appended) and
#             declares no output
#   ckpt      the same task declaring out/big as its (checkpointed) output: a new object per run
#   ckpt-same the same task whose output has content already stored (no byte appended): no copy
# The "extra" columns are ckpt - bare and ckpt-same - bare; the budget is extra <= 1.3x cp.
# Environment: WF=PATH benchmarks another wf binary (no build).
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
tmp=$(mktemp -d "${TMPDIR:-/var/tmp}/wf-ckpt.XXXXXX")
trap 'rm -rf "$tmp"' EXIT
now() { date +%s.%N; }
median() { sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
sec() { awk "BEGIN{printf \"%.3f\", $2 - $1}"; }

head -c "${mb}M" /dev/urandom > "$tmp/big"
for v in bare ckpt same; do
  mkdir -p "$tmp/$v/out"
  { echo '[workflow]'; echo "name = \"$v\""; echo '[task.make]'
    case $v in
      bare) echo "run = \"cp $tmp/big out/big && printf %s \$WF_RUN_ID >> out/big\"" ;;
      ckpt) echo "run = \"cp $tmp/big out/big && printf %s \$WF_RUN_ID >> out/big\""; echo 'outputs = ["out/big"]' ;;
      same) echo "run = \"cp $tmp/big out/big\""; echo 'outputs = ["out/big"]' ;;
    esac
  } > "$tmp/$v/wf.toml"
done
"$wf" -q -C "$tmp/same" run --force >/dev/null # its object is stored once, before timing

declare -A t
for _ in $(seq 1 "$r"); do
  sync
  s=$(now); cp "$tmp/big" "$tmp/copy"; e=$(now); t[cp]+="$(sec "$s" "$e") "
  rm -f "$tmp/copy"; sync
  s=$(now); cp "$tmp/big" "$tmp/copy"; sync "$tmp/copy"; e=$(now); t[cps]+="$(sec "$s" "$e") "
  rm -f "$tmp/copy"; sync
  s=$(now); "$wf" -q -C "$tmp/bare" run --force >/dev/null; e=$(now); t[bare]+="$(sec "$s" "$e") "
  sync
  s=$(now); "$wf" -q -C "$tmp/ckpt" run --force >/dev/null; e=$(now); t[ckpt]+="$(sec "$s" "$e") "
  # Keep the disk from filling: only the newest object is needed.
  rm -rf "$tmp/ckpt/.wf/objects"; sync
  s=$(now); "$wf" -q -C "$tmp/same" run --force >/dev/null; e=$(now); t[same]+="$(sec "$s" "$e") "
done
m() { echo "${t[$1]}" | tr ' ' '\n' | grep . | median; }
extra=$(awk "BEGIN{printf \"%.3f\", $(m ckpt) - $(m bare)}")
same=$(awk "BEGIN{printf \"%.3f\", $(m same) - $(m bare)}")
printf 'median of %d runs, %d MB output (seconds)\n' "$r" "$mb"
printf 'cp %s  cp+sync %s  wf bare %s  wf ckpt %s  wf ckpt-same %s\n' "$(m cp)" "$(m cps)" "$(m bare)" "$(m ckpt)" "$(m same)"
printf 'checkpoint extra: new object %s s = %.2fx cp (%.2fx cp+sync); already stored %s s = %.2fx cp\n' \
  "$extra" "$(awk "BEGIN{print $extra/$(m cp)}")" "$(awk "BEGIN{print $extra/$(m cps)}")" \
  "$same" "$(awk "BEGIN{print $same/$(m cp)}")"
