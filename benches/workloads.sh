#!/usr/bin/env bash
# The workloads of docs/performance.md, each against its floor (and make), side by side, median of
# R runs; peak RSS with /usr/bin/time when it is installed. Usage: benches/workloads.sh [R]
#   W1  a chain of 200 `true` tasks            vs a shell loop of `sh -c true`, and make
#   W2  fan-out 1 -> 400 -> 1 with --jobs 2    vs xargs -P2 running the same commands, and make -j2
#   W3  an up-to-date re-run of a 200-task chain with outputs (every task a cache hit)
set -euo pipefail
r=${1:-5}
root=$(cd "$(dirname "$0")/.." && pwd)
cargo build --release -q --manifest-path "$root/Cargo.toml"
wf="$root/target/release/wf"
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

declare -A t
for _ in $(seq 1 "$r"); do
  s=$(now); for _ in $(seq 1 200); do sh -c true; done; e=$(now); t[w1_floor]+="$(sec "$s" "$e") "
  s=$(now); make -s -C "$tmp/w1" >/dev/null; e=$(now); t[w1_make]+="$(sec "$s" "$e") "
  rm -rf "$tmp/w1/.wf"; s=$(now); "$wf" -q -C "$tmp/w1" run --jobs 1; e=$(now); t[w1_wf]+="$(sec "$s" "$e") "
  s=$(now); sh -c true; seq 1 400 | xargs -P2 -n1 sh -c true >/dev/null; sh -c true; e=$(now); t[w2_floor]+="$(sec "$s" "$e") "
  s=$(now); make -s -j2 -C "$tmp/w2" >/dev/null; e=$(now); t[w2_make]+="$(sec "$s" "$e") "
  rm -rf "$tmp/w2/.wf"; s=$(now); "$wf" -q -C "$tmp/w2" run --jobs 2; e=$(now); t[w2_wf]+="$(sec "$s" "$e") "
  s=$(now); "$wf" -q -C "$tmp/w3" run --jobs 1; e=$(now); t[w3_wf]+="$(sec "$s" "$e") "
done
m() { echo "${t[$1]}" | tr ' ' '\n' | grep . | median; }
rm -rf "$tmp/w2/.wf"
w2rss=$(rss "$wf" -q -C "$tmp/w2" run --jobs 2)
printf 'median of %d runs (seconds)\n' "$r"
printf 'W1 chain 200:    floor %s  make %s  wf %s  -> wf/floor %.2fx\n' "$(m w1_floor)" "$(m w1_make)" "$(m w1_wf)" "$(awk "BEGIN{print $(m w1_wf)/$(m w1_floor)}")"
printf 'W2 fan-out 400:  floor %s  make %s  wf %s  -> wf/floor %.2fx; wf peak RSS %s MB\n' "$(m w2_floor)" "$(m w2_make)" "$(m w2_wf)" "$(awk "BEGIN{print $(m w2_wf)/$(m w2_floor)}")" "$w2rss"
printf 'W3 up-to-date:   wf %s (200 cache hits, journaled)\n' "$(m w3_wf)"
