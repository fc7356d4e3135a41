#!/usr/bin/env bash
# Flat memory in what tasks print (issue #18, items 1 and 2): peak RSS of `wf run` against the bytes
# one task prints, side by side in one run, and the bytes its capped log kept.
#
#   benches/bounded.sh [MODES]     (default MODES: "pipe tty quiet verbose json")
#
# For each size — nothing, 100 MB in lines, 1 GB in lines, 1 GB without a single newline — and each
# mode (`pipe`: stdout to a pipe; `tty`: on a terminal, through `script`; `quiet`: -q; `verbose`: -v;
# `json`: --json)
# a fresh workflow with one task that prints that much is run once under `/usr/bin/time -f %M`
# (peak RSS of wf, KiB; the task's own processes are not wf's). Prints one table: mode, bytes
# printed, wf's peak RSS in MB, seconds, log bytes kept, and what `wf history` journaled.
#
# Environment: BIN=path of a `wf` binary (default: this checkout's release build, built first);
# SIZES="0 100000000 ..." to change the sizes (bytes; a trailing `n` means without newlines).
set -uo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
if [ -z "${BIN:-}" ]; then
  cargo build --release -q --manifest-path "$root/Cargo.toml" --bin wf || exit 1
  BIN="$root/target/release/wf"
fi
[ -x /usr/bin/time ] || { echo "needs /usr/bin/time (apt-get install time)" >&2; exit 2; }
modes=${1:-pipe tty quiet verbose json}
sizes=${SIZES:-0 100000000 1000000000 1000000000n}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

printf '%-8s %14s %10s %8s %12s  %s\n' MODE PRINTED RSS_MB SECS LOG_KEPT JOURNALED
for mode in $modes; do
  for size in $sizes; do
    n=${size%n}
    if [ "$size" != "$n" ]; then
      # One line of n bytes, no newline at all.
      cmd="head -c $n /dev/zero | tr -c x x"
      label="${n}n"
    else
      # Lines of 100 bytes.
      cmd="yes 'xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx' | head -c $n"
      label=$n
    fi
    d="$work/$mode-$label"
    mkdir -p "$d"
    cat > "$d/wf.toml" <<EOF
[workflow]
name = "bounded"
[task.chatty]
run = "$cmd"
EOF
    case $mode in
      pipe) run=("$BIN" -C "$d" run) ;;
      quiet) run=("$BIN" -C "$d" -q run) ;;
      verbose) run=("$BIN" -C "$d" -v run) ;;
      json) run=("$BIN" -C "$d" --json run) ;;
      tty) run=(script -qec "$BIN -C $d run" /dev/null) ;;
    esac
    start=$(date +%s.%N)
    if [ "$mode" = tty ]; then
      # `script` is the parent: measure wf itself through its own /usr/bin/time inside the pty.
      script -qec "/usr/bin/time -o $d/time -f %M $BIN -C $d run" /dev/null > /dev/null 2>&1
    else
      /usr/bin/time -o "$d/time" -f %M "${run[@]}" > /dev/null 2>&1
    fi
    end=$(date +%s.%N)
    rss_kb=$(tail -1 "$d/time")
    log=$(find "$d/.wf/logs" -name 'chatty.*.log' -printf '%s\n' 2>/dev/null | head -1)
    usage=$("$BIN" -C "$d" history 1 2>/dev/null | grep -o 'used .*' | head -1)
    printf '%-8s %14s %10.1f %8.2f %12s  %s\n' "$mode" "$label" "$(echo "$rss_kb / 1024" | bc -l)" \
      "$(echo "$end - $start" | bc -l)" "${log:-none}" "$usage"
  done
done
