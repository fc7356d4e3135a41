#!/bin/sh
# gc at a million (issue 18 item 5): build a synthetic state of 125,000 finished runs with
# 1,000,000 checkpoint records (4 tasks, 2 checkpoints each, the 7/14/30/90-day classes) through
# the store API in big batches (`state/examples/synth.rs`, fsync off), then time, on copies of it:
#   wf gc --dry-run                (nothing due)
#   wf gc --dry-run --now +31d     (750,000 due: the 7-, 14- and 30-day classes; also with -q)
#   wf gc --now +31d               (those pruned and journaled)
# printing wall time, CPU time and peak RSS (/usr/bin/time -f %M) for each, and for a baseline
# binary side by side when one is given. (CPU time is the figure to compare on a shared machine.)
#
#   benches/gc_million.sh [RUNS] [BASELINE_WF]
#   (RUNS default 125000; BASELINE_WF: another wf binary to compare, e.g. a build of main)
set -eu
RUNS=${1:-125000}
BASE=${2:-}
here=$(cd "$(dirname "$0")/.." && pwd)
cd "$here"
cargo build --release -q -p wf-state --example synth
cargo build --release -q --bin wf
WF=$here/target/release/wf
work=$(mktemp -d "${TMPDIR:-/tmp}/gc-million.XXXXXX")
trap 'rm -rf "$work"' EXIT
echo "synth: $RUNS runs, $((RUNS * 8)) checkpoint records"
/usr/bin/time -f "  synth %e s, %M KB" target/release/examples/synth --runs "$RUNS" --out "$work/src" --checkpoints 2 >/dev/null
measure() { # label binary args...
    label=$1; bin=$2; shift 2
    rm -rf "$work/run"; cp -a "$work/src" "$work/run"
    # One untimed open, so both binaries start from an index caught up with the log.
    "$bin" --state-dir "$work/run/.wf" status >/dev/null 2>&1 || true
    /usr/bin/time -f "%e %U %S %M" -o "$work/t" "$bin" --state-dir "$work/run/.wf" "$@" >/dev/null
    set -- $(cat "$work/t")
    printf '  %-44s %6s s wall  %6s user + %5s sys = %5.2f s CPU  %5d MB peak RSS\n' "$label" "$1" "$2" "$3" \
        "$(awk "BEGIN { print $2 + $3 }")" $(($4 / 1024))
}
# Each case for each binary in turn (side by side, interleaved: a shared machine's load moves).
for args in "gc --dry-run" "gc --dry-run --now +31d" "-q gc --dry-run --now +31d" "gc --now +31d"; do
    for bin in "$WF" ${BASE:+"$BASE"}; do
        name=new; [ "$bin" = "$WF" ] || name=base
        # shellcheck disable=SC2086
        measure "$name: $args" "$bin" $args
    done
done
