#!/usr/bin/env bash
# The workloads of docs/performance.md, each against its floor (and make), side by side, median of
# R runs; peak RSS with /usr/bin/time when it is installed. Usage: benches/workloads.sh [R]
#   W1  a chain of 200 `true` tasks            vs a shell loop of `sh -c true`, and make
#   W2  fan-out 1 -> 400 -> 1 with --jobs 2    vs xargs -P2 running the same commands, and make -j2
#   W3  an up-to-date re-run of a 200-task chain with outputs (every task a cache hit)
# and the checkpointed variants (issue #22), each task writing one stamp file it declares as its
# output (so wf hashes, stores and syncs a checkpoint per task), against the same-command floor:
#   W1c a chain of 200 `touch out/tN`           vs a shell loop of `sh -c 'touch out/tN'`, and make
#   W2c fan-out 1 -> 500 -> 1 with --jobs 2     vs xargs -P2 running the same commands, and make -j2
# Environment: WF=PATH benchmarks another wf binary (no build); BASE=PATH also times that binary
# in the same rounds (a "base" row per workload, for before/after side by side); ONLY=c runs only
# the checkpointed variants (and W3), ONLY=bare only the bare ones.
set -euo pipefail
r=${1:-5}
root=$(cd "$(dirname "$0")/.." && pwd)
only=${ONLY:-}
if [ -n "${WF:-}" ]; then
  wf=$WF
else
  cargo build --release -q --manifest-path "$root/Cargo.toml"
  wf="$root/target/release/wf"
fi
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
now() { date +%s.%N; }
median() { sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
sec() { awk "BEGIN{printf \"%.3f\", $2 - $1}"; }
rss() { # peak RSS in MB of a command, or "-" without GNU time
  if [ -x /usr/bin/time ]; then
    /usr/bin/time -f %M "$@" 2>&1 >/dev/null | tail -1 | awk '{printf "%.1f", $1/1024}'
  else
    "$@" >/dev/null 2>&1; echo "-"
  fi
}

# W1
mkdir -p "$tmp/w1"
{ echo '[workflow]'; echo 'name = "w1"'
  for i in $(seq 1 200); do echo "[task.t$i]"; echo 'run = "true"'; [ "$i" -gt 1 ] && echo "needs = [\"t$((i - 1))\"]"; done
} > "$tmp/w1/wf.toml"
{ echo 'all: t200'; echo 't1:'; printf '\t@true\n'
  for i in $(seq 2 200); do echo "t$i: t$((i - 1))"; printf '\t@true\n'; done
  echo '.PHONY: all'; printf '.PHONY:'; for i in $(seq 1 200); do printf ' t%d' "$i"; done; echo
} > "$tmp/w1/Makefile"
# W2
mkdir -p "$tmp/w2"
{ echo '[workflow]'; echo 'name = "w2"'; echo '[task.src]'; echo 'run = "true"'
  for i in $(seq 1 400); do echo "[task.w$i]"; echo 'run = "true"'; echo 'needs = ["src"]'; done
  echo '[task.sink]'; echo 'run = "true"'; printf 'needs = ['
  for i in $(seq 1 400); do printf '"w%d"' "$i"; [ "$i" -lt 400 ] && printf ', '; done; echo ']'
} > "$tmp/w2/wf.toml"
{ printf 'sink:'; for i in $(seq 1 400); do printf ' w%d' "$i"; done; echo; printf '\t@true\n'
  for i in $(seq 1 400); do echo "w$i: src"; printf '\t@true\n'; done
  echo 'src:'; printf '\t@true\n'
  printf '.PHONY: sink src'; for i in $(seq 1 400); do printf ' w%d' "$i"; done; echo
} > "$tmp/w2/Makefile"
# W3
mkdir -p "$tmp/w3"
{ echo '[workflow]'; echo 'name = "w3"'
  for i in $(seq 1 200); do echo "[task.t$i]"; echo "run = \"mkdir -p out && echo $i > out/t$i\""; echo "outputs = [\"out/t$i\"]"
    [ "$i" -gt 1 ] && { echo "needs = [\"t$((i - 1))\"]"; echo "inputs = [\"out/t$((i - 1))\"]"; }; done
} > "$tmp/w3/wf.toml"
"$wf" -q -C "$tmp/w3" run
# W1c
mkdir -p "$tmp/w1c"
{ echo '[workflow]'; echo 'name = "w1c"'
  for i in $(seq 1 200); do echo "[task.t$i]"; echo "run = \"touch out/t$i\""; echo "outputs = [\"out/t$i\"]"
    [ "$i" -gt 1 ] && echo "needs = [\"t$((i - 1))\"]"; done
} > "$tmp/w1c/wf.toml"
{ echo 'all: out/t200'; echo 'out/t1:'; printf '\t@touch out/t1\n'
  for i in $(seq 2 200); do echo "out/t$i: out/t$((i - 1))"; printf '\t@touch out/t%d\n' "$i"; done
} > "$tmp/w1c/Makefile"
# W2c
mkdir -p "$tmp/w2c"
{ echo '[workflow]'; echo 'name = "w2c"'; echo '[task.src]'; echo 'run = "touch out/src"'; echo 'outputs = ["out/src"]'
  for i in $(seq 1 500); do echo "[task.w$i]"; echo "run = \"touch out/w$i\""; echo "outputs = [\"out/w$i\"]"; echo 'needs = ["src"]'; done
  echo '[task.sink]'; echo 'run = "touch out/sink"'; echo 'outputs = ["out/sink"]'; printf 'needs = ['
  for i in $(seq 1 500); do printf '"w%d"' "$i"; [ "$i" -lt 500 ] && printf ', '; done; echo ']'
} > "$tmp/w2c/wf.toml"
{ echo 'all: out/sink'; printf 'out/sink:'; for i in $(seq 1 500); do printf ' out/w%d' "$i"; done; echo; printf '\t@touch out/sink\n'
  for i in $(seq 1 500); do echo "out/w$i: out/src"; printf '\t@touch out/w%d\n' "$i"; done
  echo 'out/src:'; printf '\t@touch out/src\n'
} > "$tmp/w2c/Makefile"
fresh() { rm -rf "$1/.wf" "$1/out"; mkdir -p "$1/out"; }

declare -A t
bare() { [ "$only" != c ]; }
ckpt() { [ "$only" != bare ]; }
for _ in $(seq 1 "$r"); do
  if ckpt; then
  fresh "$tmp/w1c"; s=$(now); for i in $(seq 1 200); do sh -c "touch $tmp/w1c/out/t$i"; done; e=$(now); t[w1c_floor]+="$(sec "$s" "$e") "
  fresh "$tmp/w1c"; s=$(now); make -s -C "$tmp/w1c" >/dev/null; e=$(now); t[w1c_make]+="$(sec "$s" "$e") "
  fresh "$tmp/w1c"; s=$(now); "$wf" -q -C "$tmp/w1c" run --jobs 1; e=$(now); t[w1c_wf]+="$(sec "$s" "$e") "
  if [ -n "${BASE:-}" ]; then fresh "$tmp/w1c"; s=$(now); "$BASE" -q -C "$tmp/w1c" run --jobs 1; e=$(now); t[w1c_base]+="$(sec "$s" "$e") "; fi
  fresh "$tmp/w2c"; s=$(now); sh -c "touch $tmp/w2c/out/src"; seq 1 500 | sed "s|^|touch $tmp/w2c/out/w|" | xargs -P2 -I{} sh -c {}; sh -c "touch $tmp/w2c/out/sink"; e=$(now); t[w2c_floor]+="$(sec "$s" "$e") "
  fresh "$tmp/w2c"; s=$(now); make -s -j2 -C "$tmp/w2c" >/dev/null; e=$(now); t[w2c_make]+="$(sec "$s" "$e") "
  fresh "$tmp/w2c"; s=$(now); "$wf" -q -C "$tmp/w2c" run --jobs 2; e=$(now); t[w2c_wf]+="$(sec "$s" "$e") "
  if [ -n "${BASE:-}" ]; then fresh "$tmp/w2c"; s=$(now); "$BASE" -q -C "$tmp/w2c" run --jobs 2; e=$(now); t[w2c_base]+="$(sec "$s" "$e") "; fi
  fi
  s=$(now); "$wf" -q -C "$tmp/w3" run --jobs 1; e=$(now); t[w3_wf]+="$(sec "$s" "$e") "
  bare || continue
  s=$(now); for _ in $(seq 1 200); do sh -c true; done; e=$(now); t[w1_floor]+="$(sec "$s" "$e") "
  s=$(now); make -s -C "$tmp/w1" >/dev/null; e=$(now); t[w1_make]+="$(sec "$s" "$e") "
  rm -rf "$tmp/w1/.wf"; s=$(now); "$wf" -q -C "$tmp/w1" run --jobs 1; e=$(now); t[w1_wf]+="$(sec "$s" "$e") "
  if [ -n "${BASE:-}" ]; then rm -rf "$tmp/w1/.wf"; s=$(now); "$BASE" -q -C "$tmp/w1" run --jobs 1; e=$(now); t[w1_base]+="$(sec "$s" "$e") "; fi
  s=$(now); sh -c true; seq 1 400 | xargs -P2 -n1 sh -c true >/dev/null; sh -c true; e=$(now); t[w2_floor]+="$(sec "$s" "$e") "
  s=$(now); make -s -j2 -C "$tmp/w2" >/dev/null; e=$(now); t[w2_make]+="$(sec "$s" "$e") "
  rm -rf "$tmp/w2/.wf"; s=$(now); "$wf" -q -C "$tmp/w2" run --jobs 2; e=$(now); t[w2_wf]+="$(sec "$s" "$e") "
  if [ -n "${BASE:-}" ]; then rm -rf "$tmp/w2/.wf"; s=$(now); "$BASE" -q -C "$tmp/w2" run --jobs 2; e=$(now); t[w2_base]+="$(sec "$s" "$e") "; fi
done
m() { echo "${t[$1]}" | tr ' ' '\n' | grep . | median; }
row() { # NAME KEY [EXTRA]: floor, make, wf, and wf against both
  printf '%-26s floor %s  make %s  wf %s  -> wf/floor %.2fx  wf/make %.2fx%s\n' "$1" "$(m "$2_floor")" "$(m "$2_make")" "$(m "$2_wf")" \
    "$(awk "BEGIN{print $(m "$2_wf")/$(m "$2_floor")}")" "$(awk "BEGIN{print $(m "$2_wf")/$(m "$2_make")}")" "${3:-}"
  if [ -n "${t[$2_base]:-}" ]; then
    printf '%-26s base %s -> base/floor %.2fx  base/make %.2fx\n' '' "$(m "$2_base")" \
      "$(awk "BEGIN{print $(m "$2_base")/$(m "$2_floor")}")" "$(awk "BEGIN{print $(m "$2_base")/$(m "$2_make")}")"
  fi
}
printf 'median of %d runs (seconds)\n' "$r"
if bare; then
  rm -rf "$tmp/w2/.wf"
  w2rss=$(rss "$wf" -q -C "$tmp/w2" run --jobs 2)
  row 'W1 chain 200 (true):' w1
  row 'W2 fan-out 400 (true):' w2 "; wf peak RSS $w2rss MB"
fi
if ckpt; then
  fresh "$tmp/w2c"
  w2crss=$(rss "$wf" -q -C "$tmp/w2c" run --jobs 2)
  row 'W1c chain 200 (ckpt):' w1c
  row 'W2c fan-out 500 (ckpt):' w2c "; wf peak RSS $w2crss MB"
fi
printf 'W3 up-to-date:   wf %s (200 cache hits, journaled)\n' "$(m w3_wf)"
