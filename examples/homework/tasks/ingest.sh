#!/bin/sh
# ingest: data/raw.csv -> data/raw.json
#
# Reads the shipped CSV (header `id,date,feature,target`), validates every row
# and writes a JSON array with one object per line:
#   [
#   {"id":1,"date":"2026-01-01","feature":3.2,"target":18.1},
#   {"id":2,"date":"2026-01-02","feature":null,"target":19.0}
#   ]
# Empty CSV fields become null. The layout is valid JSON *and* line-oriented,
# so the downstream tasks can read it with awk.
#
# Metrics: rows, source_uri, artifact_path.
# POSIX sh + POSIX awk only.
set -eu
LC_ALL=C; export LC_ALL   # stable number formatting and regexes

: "${WF_METRICS:=/dev/null}"
: "${WF_RUN_ID:=manual}"
: "${WF_TASK:=ingest}"
: "${WF_ATTEMPT:=1}"

# Work from examples/homework/ whatever the caller's directory.
CDPATH= cd -- "$(dirname -- "$0")/.."

IN=data/raw.csv
OUT=data/raw.json

die() { printf '%s: error: %s\n' "$WF_TASK" "$*" >&2; exit 1; }

tmp=
cleanup() { if [ -n "$tmp" ]; then rm -f "$tmp"; fi; }
trap cleanup EXIT
trap 'exit 129' HUP
trap 'exit 130' INT
trap 'exit 143' TERM

echo "$WF_TASK: start (run $WF_RUN_ID, attempt $WF_ATTEMPT)"

[ -f "$IN" ] || die "input $IN not found"
[ -r "$IN" ] || die "input $IN is not readable"

mkdir -p "$(dirname "$OUT")"
tmp=$OUT.tmp.$$

# awk writes the JSON to $tmp and prints the row count on stdout.
rows=$(awk -F, -v out="$tmp" -v src="$IN" -v task="$WF_TASK" '
function fail(msg) {
    # Errors found in END concern the whole file, not its last line.
    print task ": error: " src (in_end ? "" : ":" NR) ": " msg | "cat 1>&2"
    failed = 1
    exit 1
}
# JSON-compatible number: no leading "+", no leading zeros, no bare "."
function isnum(s) {
    return s ~ /^-?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][-+]?[0-9]+)?$/
}
function num_or_null(s, name) {
    if (s == "") { return "null" }
    if (!isnum(s)) { fail(name " is not a number: \"" s "\"") }
    return s
}
{ sub(/\r$/, "") }                      # tolerate CRLF line endings
NR == 1 {
    if ($0 != "id,date,feature,target") {
        fail("bad header \"" $0 "\" (expected \"id,date,feature,target\")")
    }
    next
}
/^[ \t]*$/ { next }                     # ignore blank lines
{
    if (NF != 4) { fail("expected 4 fields, got " NF) }
    id = $1; date = $2
    if (id !~ /^[1-9][0-9]*$/) { fail("id is not a positive integer: \"" id "\"") }
    if (id in seen) { fail("duplicate id " id " (first seen on line " seen[id] ")") }
    seen[id] = NR
    if (date !~ /^[0-9][0-9][0-9][0-9]-(0[1-9]|1[0-2])-(0[1-9]|[12][0-9]|3[01])$/) {
        fail("date is not YYYY-MM-DD: \"" date "\"")
    }
    f = num_or_null($3, "feature")
    t = num_or_null($4, "target")
    rec[++n] = "{\"id\":" id ",\"date\":\"" date "\",\"feature\":" f ",\"target\":" t "}"
}
END {
    if (failed) { exit 1 }
    in_end = 1
    if (NR == 0) { fail("file is empty (no header)") }
    if (n == 0)  { fail("no data rows") }
    print "[" > out
    for (i = 1; i <= n; i++) { print rec[i] (i < n ? "," : "") > out }
    print "]" > out
    close(out)
    print n
}' "$IN")
[ -s "$tmp" ] || die "failed to write $tmp"

mv -f "$tmp" "$OUT"
tmp=

echo "$WF_TASK: read $rows rows from $IN"
echo "$WF_TASK: wrote $OUT"

{
    echo "rows=$rows"
    echo "source_uri=file://$IN"
    echo "artifact_path=$OUT"
} >> "$WF_METRICS"

echo "$WF_TASK: done"
