#!/usr/bin/env bash
# W1 of docs/performance.md: a chain of N tasks running `true`, wf against its floor (a shell loop
# spawning `sh -c true` N times), side by side, median of R runs. Usage: benches/chain.sh [N] [R]
# Builds the release binary first. Prints wall times and the ratio.
set -euo pipefail
n=${1:-200}
r=${2:-5}
root=$(cd "$(dirname "$0")/.." && pwd)
cargo build --release -q --manifest-path "$root/Cargo.toml"
wf="$root/target/release/wf"
dir=$(mktemp -d)
trap 'rm -rf "$dir"' EXIT
{
  echo '[workflow]'
  echo 'name = "chain"'
  for i in $(seq 1 "$n"); do
    echo "[task.t$i]"
    echo 'run = "true"'
    if [ "$i" -gt 1 ]; then echo "needs = [\"t$((i - 1))\"]"; fi
  done
} > "$dir/wf.toml"
now() { date +%s.%N; }
median() { sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
floor_times=(); wf_times=()
for _ in $(seq 1 "$r"); do
  s=$(now); for _ in $(seq 1 "$n"); do sh -c true; done; e=$(now)
  floor_times+=("$(awk "BEGIN{print $e - $s}")")
  rm -rf "$dir/.wf"
  s=$(now); "$wf" -q -C "$dir" run --jobs 1; e=$(now)
  wf_times+=("$(awk "BEGIN{print $e - $s}")")
done
fm=$(printf '%s\n' "${floor_times[@]}" | median)
wm=$(printf '%s\n' "${wf_times[@]}" | median)
printf 'chain of %d `true` tasks, median of %d runs\n' "$n" "$r"
printf '  floor (shell loop of sh -c true): %.3f s\n' "$fm"
printf '  wf run (durable, fsync):          %.3f s\n' "$wm"
printf '  ratio: %.2fx; wf overhead per task beyond the spawn: %.2f ms\n' \
  "$(awk "BEGIN{print $wm / $fm}")" "$(awk "BEGIN{print ($wm - $fm) * 1000 / $n}")"
