#!/bin/sh
# report: data/scores.json + model/model.json -> reports/report.txt
#
# Writes a short human report: run id, rows, model parameters, R^2, RMSE,
# the 3 largest absolute residuals, and a sign-off line for the reviewer.
# In wf.toml this task is `manual = true`: it runs only after `wf approve report`.
#
# Metrics: rows_in, summary_path, artifact_path.
# POSIX sh + POSIX awk only.
set -eu
LC_ALL=C; export LC_ALL   # stable number formatting and regexes

: "${WF_METRICS:=/dev/null}"
: "${WF_RUN_ID:=manual}"
: "${WF_PARAM_DAY:=unknown}"
: "${WF_TASK:=report}"
: "${WF_ATTEMPT:=1}"

CDPATH= cd -- "$(dirname -- "$0")/.."

SCORES=data/scores.json
MODEL=model/model.json
OUT=reports/report.txt

die() { printf '%s: error: %s\n' "$WF_TASK" "$*" >&2; exit 1; }

tmp=
cleanup() { if [ -n "$tmp" ]; then rm -f "$tmp"; fi; }
trap cleanup EXIT
trap 'exit 129' HUP
trap 'exit 130' INT
trap 'exit 143' TERM

echo "$WF_TASK: start (run $WF_RUN_ID, attempt $WF_ATTEMPT)"

for f in "$SCORES" "$MODEL"; do
    [ -f "$f" ] || die "input $f not found (run train_or_score first)"
    [ -r "$f" ] || die "input $f is not readable"
done

# Model parameters: "intercept slope n trained_at_run".
model=$(awk -v src="$MODEL" -v task="$WF_TASK" '
function fail(msg) { print task ": error: " src ": " msg | "cat 1>&2"; failed = 1; exit 1 }
function num(k, required,    i, v) {
    i = index(s, "\"" k "\":")
    if (!i) { if (required) { fail("missing \"" k "\"") } return "?" }
    v = substr(s, i + length(k) + 3)
    if (!match(v, /^-?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][-+]?[0-9]+)?/)) { fail("\"" k "\" is not a number") }
    return substr(v, 1, RLENGTH)
}
function str(k,    i, v) {
    i = index(s, "\"" k "\":\"")
    if (!i) { return "?" }
    v = substr(s, i + length(k) + 4)
    v = substr(v, 1, index(v, "\"") - 1)
    gsub(/[^A-Za-z0-9._:-]/, "_", v)
    return v == "" ? "?" : v
}
{ s = s $0 }
END {
    if (failed) { exit 1 }
    gsub(/[ \t\r]/, "", s)
    if (s !~ /^\{.*\}$/) { fail("not a JSON object") }
    if (index(s, "\"kind\":\"ols\"") == 0) { fail("not an OLS model (expected \"kind\":\"ols\")") }
    print num("intercept", 1), num("slope", 1), num("n", 0), str("trained_at_run")
}' "$MODEL")
set -- $model
intercept=$1 slope=$2 model_n=$3 trained_at_run=$4
echo "$WF_TASK: read $MODEL (intercept=$intercept, slope=$slope)"

mkdir -p "$(dirname "$OUT")"
tmp=$OUT.tmp.$$
generated=$(date -u +%Y-%m-%dT%H:%M:%SZ)

# awk writes the report to $tmp and prints the number of scored rows.
rows_in=$(awk -v src="$SCORES" -v task="$WF_TASK" -v out="$tmp" \
    -v run_id="$WF_RUN_ID" -v day="$WF_PARAM_DAY" -v generated="$generated" \
    -v intercept="$intercept" -v slope="$slope" -v model_n="$model_n" \
    -v trained_at_run="$trained_at_run" -v model_path="$MODEL" '
function fail(msg) {
    # Errors found in END concern the whole file, not its last line.
    print task ": error: " src (in_end ? "" : ":" FNR) ": " msg | "cat 1>&2"
    failed = 1
    exit 1
}
# Square root by Newton iteration: some busybox awk builds lack sqrt() and ^.
function root(v,    r, prev, i) {
    if (v <= 0) { return 0 }
    r = v > 1 ? v : 1
    for (i = 0; i < 200; i++) {
        prev = r
        r = (r + v / r) / 2
        if (r >= prev) { break }
    }
    return prev < r ? prev : r
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
    if (n > 0 && last_comma) { fail("trailing comma before \"]\"") }
    state = 2; next
}
{
    if (n > 0 && !last_comma) { fail("missing comma after previous record") }
    line = $0
    last_comma = sub(/,$/, "", line)
    if (!parse(line)) { fail("not a flat JSON object: " $0) }
    if (!("id" in R) || !("date" in R) || !("feature" in R) || !("target" in R) ||
        !("prediction" in R) || !("residual" in R)) {
        fail("record lacks one of id, date, feature, target, prediction, residual")
    }
    if (R["id"] !~ /^[0-9]+$/) { fail("id is not an integer: " R["id"]) }
    if (R["date"] !~ /^"[^"]*"$/) { fail("date is not a string: " R["date"]) }
    if (!isnum(R["feature"]) || !isnum(R["target"]) || !isnum(R["prediction"]) || !isnum(R["residual"])) {
        fail("feature, target, prediction and residual must be numbers: " $0)
    }
    n++
    id[n] = R["id"]; date[n] = substr(R["date"], 2, length(R["date"]) - 2)
    feat[n] = R["feature"]; targ[n] = R["target"]
    pred[n] = R["prediction"]; res[n] = R["residual"]
    # Recompute the residual from the model at full precision, so R^2 and
    # RMSE match what train_or_score reported (stored values are rounded).
    y[n] = R["target"] + 0
    e[n] = y[n] - (intercept + slope * R["feature"])
}
END {
    if (failed) { exit 1 }
    in_end = 1
    if (state != 2) { fail("missing closing \"]\" (truncated file?)") }
    if (n == 0) { fail("no scored records to report on") }

    my = 0
    for (i = 1; i <= n; i++) { my += y[i] }
    my = my / n
    ssr = 0; sst = 0
    for (i = 1; i <= n; i++) { ssr += e[i] * e[i]; sst += (y[i] - my) * (y[i] - my) }
    if (sst > 0) { r2 = 1 - ssr / sst } else { r2 = (ssr == 0) ? 1 : 0 }
    rmse = root(ssr / n)

    # Top 3 by |residual|; ties keep file order.
    k = 0
    for (i = 1; i <= n; i++) {
        a = e[i] < 0 ? -e[i] : e[i]
        for (j = k; j >= 1 && a > top_abs[j]; j--) {
            if (j < 3) { top_abs[j + 1] = top_abs[j]; top[j + 1] = top[j] }
        }
        if (j < 3) { top_abs[j + 1] = a; top[j + 1] = i; if (k < 3) { k++ } }
    }

    print "Homework pipeline report" > out
    print "========================" > out
    printf "Run:            %s (day %s)\n", run_id, day > out
    printf "Generated:      %s\n", generated > out
    printf "Rows scored:    %d (data/scores.json)\n", n > out
    printf "Model:          OLS from %s, trained on %s rows in run %s\n", model_path, model_n, trained_at_run > out
    printf "                target = %s + %s * feature\n", intercept, slope > out
    printf "R^2:            %.4f\n", r2 > out
    printf "RMSE:           %.4f\n", rmse > out
    print "" > out
    print "Largest absolute residuals (residual = target - prediction):" > out
    printf "  %-4s  %-6s  %-10s  %8s  %8s  %10s  %9s\n", "rank", "id", "date", "feature", "target", "prediction", "residual" > out
    for (r = 1; r <= k; r++) {
        i = top[r]
        printf "  %-4d  %-6s  %-10s  %8s  %8s  %10s  %9s\n", r, id[i], date[i], feat[i], targ[i], pred[i], res[i] > out
    }
    print "" > out
    print "Reviewed by: ______ (manual gate)" > out
    close(out)
    print n
}' "$SCORES")
[ -s "$tmp" ] || die "failed to write $tmp"

mv -f "$tmp" "$OUT"
tmp=

echo "$WF_TASK: read $rows_in scored records from $SCORES"
echo "$WF_TASK: wrote $OUT:"
sed 's/^/  | /' "$OUT"

{
    echo "rows_in=$rows_in"
    echo "summary_path=$OUT"
    echo "artifact_path=$OUT"
} >> "$WF_METRICS"

echo "$WF_TASK: done"
