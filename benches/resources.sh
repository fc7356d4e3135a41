#!/usr/bin/env bash
# Issue #18's numbers side by side in one run, with one binary: peak RSS of `wf run` against the
# bytes a task prints and the log bytes kept (benches/bounded.sh, pipe mode unless MODES is set),
# what checkpointing a 512 MB output costs against `cp` (benches/checkpoint_cost.sh), and `wf gc`
# over 1,000,000 checkpoint records (benches/gc_million.sh). About 6 minutes on a 2-core machine.
#
#   benches/resources.sh [CHECKPOINT_ROUNDS] [GC_RUNS]     (defaults: 5, 125000)
#
# Environment: WF=path of a `wf` binary to measure (default: this checkout's release build, built
# first; gc_million.sh always measures this checkout's build); MODES for bounded.sh.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
rounds=${1:-5}
runs=${2:-125000}
if [ -z "${WF:-}" ]; then
  cargo build --release -q --manifest-path "$here/../Cargo.toml" --bin wf
  WF="$here/../target/release/wf"
fi
echo "== peak RSS and log bytes against what a task prints (benches/bounded.sh ${MODES:-pipe})"
BIN=$WF bash "$here/bounded.sh" "${MODES:-pipe}"
echo
echo "== checkpointing a 512 MB output against cp (benches/checkpoint_cost.sh $rounds 512)"
WF=$WF bash "$here/checkpoint_cost.sh" "$rounds" 512
echo
echo "== gc over $((runs * 8)) checkpoint records (benches/gc_million.sh $runs)"
sh "$here/gc_million.sh" "$runs"
