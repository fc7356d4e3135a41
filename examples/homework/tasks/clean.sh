#!/bin/sh
# clean: data/raw.json -> data/clean.json
#
# Reads the line-oriented JSON array written by ingest (one object per line),
# drops every record with a null field and writes the survivors in the same
# layout.
#
# Metrics: rows_in, rows_out, null_pct (percentage of rows dropped, 2 decimals),
#          artifact_path.
# POSIX sh + POSIX awk only.
set -eu
LC_ALL=C; export LC_ALL   # stable number formatting and regexes

: "${WF_METRICS:=/dev/null}"
: "${WF_RUN_ID:=manual}"
: "${WF_TASK:=clean}"
: "${WF_ATTEMPT:=1}"

CDPATH= cd -- "$(dirname -- "$0")/.."

IN=data/raw.json
OUT=data/clean.json

die() { printf '%s: error: %s\n' "$WF_TASK" "$*" >&2; exit 1; }

tmp=
cleanup() { if [ -n "$tmp" ]; then rm -f "$tmp"; fi; }
trap cleanup EXIT
trap 'exit 129' HUP
trap 'exit 130' INT
trap 'exit 143' TERM

echo "$WF_TASK: start (run $WF_RUN_ID, attempt $WF_ATTEMPT)"

[ -f "$IN" ] || die "input $IN not found (run ingest first)"
[ -r "$IN" ] || die "input $IN is not readable"

mkdir -p "$(dirname "$OUT")"
tmp=$OUT.tmp.$$

# awk writes the JSON to $tmp and prints "rows_in rows_out null_pct".
summary=$(awk -v out="$tmp" -v src="$IN" -v task="$WF_TASK" '
function fail(msg) {
    # Errors found in END concern the whole file, not its last line.
    print task ": error: " src (in_end ? "" : ":" FNR) ": " msg | "cat 1>&2"
    failed = 1
    exit 1
}
function isnum(s) {
    return s ~ /^-?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][-+]?[0-9]+)?$/
}
# Parse one flat object {"k":v,...} (no nesting, no commas inside strings)
# into R[k] = raw value text. Returns the number of keys, 0 if malformed.
function parse(line,    body, parts, n, i, j, k) {
    split("", R)
    if (line !~ /^\{.*\}$/) { return 0 }
    body = substr(line, 2, length(line) - 2)
    n = split(body, parts, ",")
    for (i = 1; i <= n; i++) {
        if (parts[i] !~ /^"[A-Za-z_][A-Za-z0-9_]*":./) { return 0 }
        j = index(parts[i], "\":")
        k = substr(parts[i], 2, j - 2)
        R[k] = substr(parts[i], j + 2)
    }
    return n
}
{ sub(/\r$/, ""); gsub(/^[ \t]+|[ \t]+$/, "") }
$0 == "" { next }
state == 0 {
    if ($0 == "[]") { state = 2; next }
    if ($0 != "[") { fail("expected \"[\" on the first line") }
    state = 1; next
}
state == 2 { fail("unexpected content after closing \"]\"") }
$0 == "]" {
    if (n_in > 0 && last_comma) { fail("trailing comma before \"]\"") }
    state = 2; next
}
{
    if (n_in > 0 && !last_comma) { fail("missing comma after previous record") }
    line = $0
    last_comma = sub(/,$/, "", line)
    if (!parse(line)) { fail("not a flat JSON object: " $0) }
    if (!("id" in R) || !("date" in R) || !("feature" in R) || !("target" in R)) {
        fail("record lacks one of id, date, feature, target")
    }
    if (R["id"] !~ /^[0-9]+$/) { fail("id is not an integer: " R["id"]) }
    if (R["date"] !~ /^"[^"]*"$/) { fail("date is not a string: " R["date"]) }
    if (R["feature"] != "null" && !isnum(R["feature"])) { fail("bad feature: " R["feature"]) }
    if (R["target"] != "null" && !isnum(R["target"])) { fail("bad target: " R["target"]) }
    n_in++
    if (R["feature"] == "null" || R["target"] == "null") { next }
    rec[++n_out] = "{\"id\":" R["id"] ",\"date\":" R["date"] ",\"feature\":" R["feature"] ",\"target\":" R["target"] "}"
}
END {
    if (failed) { exit 1 }
    in_end = 1
    if (state != 2) { fail("missing closing \"]\" (truncated file?)") }
    if (n_in == 0) { fail("no records to clean") }
    print "[" > out
    for (i = 1; i <= n_out; i++) { print rec[i] (i < n_out ? "," : "") > out }
    print "]" > out
    close(out)
    printf "%d %d %.2f\n", n_in, n_out, 100 * (n_in - n_out) / n_in
}' "$IN")
[ -s "$tmp" ] || die "failed to write $tmp"

set -- $summary
rows_in=$1 rows_out=$2 null_pct=$3

mv -f "$tmp" "$OUT"
tmp=

echo "$WF_TASK: read $rows_in records from $IN"
echo "$WF_TASK: dropped $((rows_in - rows_out)) records with nulls ($null_pct%)"
if [ "$rows_out" -eq 0 ]; then
    echo "$WF_TASK: warning: every record had a null; $OUT is empty" >&2
fi
echo "$WF_TASK: wrote $rows_out records to $OUT"

{
    echo "rows_in=$rows_in"
    echo "rows_out=$rows_out"
    echo "null_pct=$null_pct"
    echo "artifact_path=$OUT"
} >> "$WF_METRICS"

echo "$WF_TASK: done"
