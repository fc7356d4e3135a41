#!/bin/sh
# train_or_score: data/clean.json -> model/model.json + data/scores.json
#
# MODE=train (default): fit ordinary least squares  target = a + b*feature
#   on data/clean.json, write model/model.json, then score the same records.
# MODE=score: read the existing model/model.json (never written in this mode)
#   and score data/clean.json with it.
#
# data/scores.json has the same line-oriented layout as clean.json, each record
# extended with "prediction" and "residual" (= target - prediction).
# Predictions use the rounded parameters stored in model.json, so scoring with
# a saved model reproduces the training-time scores exactly.
#
# Metrics: params=intercept=<a>;slope=<b>, score=<R^2, 4 decimals>, rmse,
#          artifact_path.
# POSIX sh + POSIX awk only.
set -eu
LC_ALL=C; export LC_ALL   # stable number formatting and regexes

: "${WF_METRICS:=/dev/null}"
: "${WF_RUN_ID:=manual}"
: "${WF_TASK:=train_or_score}"
: "${WF_ATTEMPT:=1}"
: "${MODE:=train}"

CDPATH= cd -- "$(dirname -- "$0")/.."

IN=data/clean.json
MODEL=model/model.json
OUT=data/scores.json

die() { printf '%s: error: %s\n' "$WF_TASK" "$*" >&2; exit 1; }

tmp_scores=
tmp_model=
cleanup() {
    if [ -n "$tmp_scores" ]; then rm -f "$tmp_scores"; fi
    if [ -n "$tmp_model" ]; then rm -f "$tmp_model"; fi
}
trap cleanup EXIT
trap 'exit 129' HUP
trap 'exit 130' INT
trap 'exit 143' TERM

echo "$WF_TASK: start (run $WF_RUN_ID, attempt $WF_ATTEMPT, MODE=$MODE)"

case $MODE in
    train|score) ;;
    *) die "MODE must be \"train\" or \"score\", got \"$MODE\"" ;;
esac

[ -f "$IN" ] || die "input $IN not found (run clean first)"
[ -r "$IN" ] || die "input $IN is not readable"

# In score mode, load intercept and slope from the saved model.
a_in= b_in=
if [ "$MODE" = score ]; then
    [ -f "$MODEL" ] || die "MODE=score needs an existing $MODEL (run once with MODE=train)"
    [ -r "$MODEL" ] || die "model $MODEL is not readable"
    params=$(awk -v src="$MODEL" -v task="$WF_TASK" '
    function fail(msg) { print task ": error: " src ": " msg | "cat 1>&2"; failed = 1; exit 1 }
    function get(k,    i, v) {
        i = index(s, "\"" k "\":")
        if (!i) { fail("missing \"" k "\"") }
        v = substr(s, i + length(k) + 3)
        if (!match(v, /^-?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][-+]?[0-9]+)?/)) { fail("\"" k "\" is not a number") }
        return substr(v, 1, RLENGTH)
    }
    { s = s $0 }
    END {
        if (failed) { exit 1 }
        gsub(/[ \t\r]/, "", s)
        if (s !~ /^\{.*\}$/) { fail("not a JSON object") }
        if (index(s, "\"kind\":\"ols\"") == 0) { fail("not an OLS model (expected \"kind\":\"ols\")") }
        a = get("intercept"); b = get("slope")
        print a, b
    }' "$MODEL")
    set -- $params
    a_in=$1 b_in=$2
    echo "$WF_TASK: loaded $MODEL (intercept=$a_in, slope=$b_in)"
fi

# The run id goes into model.json as a JSON string; keep it JSON-safe.
run_id=$(printf '%s' "$WF_RUN_ID" | tr -c 'A-Za-z0-9._:-' '_')

mkdir -p "$(dirname "$OUT")" "$(dirname "$MODEL")"
tmp_scores=$OUT.tmp.$$
if [ "$MODE" = train ]; then tmp_model=$MODEL.tmp.$$; fi

# awk writes $tmp_scores (and $tmp_model in train mode) and prints
# "n intercept slope r2 rmse" on stdout.
summary=$(awk -v src="$IN" -v task="$WF_TASK" -v mode="$MODE" \
    -v a_in="$a_in" -v b_in="$b_in" -v run_id="$run_id" \
    -v out="$tmp_scores" -v model_out="$tmp_model" '
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
    if (!("id" in R) || !("date" in R) || !("feature" in R) || !("target" in R)) {
        fail("record lacks one of id, date, feature, target")
    }
    if (R["id"] !~ /^[0-9]+$/) { fail("id is not an integer: " R["id"]) }
    if (R["date"] !~ /^"[^"]*"$/) { fail("date is not a string: " R["date"]) }
    if (!isnum(R["feature"])) { fail("feature is not a number (nulls should have been cleaned): " R["feature"]) }
    if (!isnum(R["target"])) { fail("target is not a number (nulls should have been cleaned): " R["target"]) }
    n++
    id[n] = R["id"]; date[n] = R["date"]
    xs[n] = R["feature"]; ys[n] = R["target"]        # keep the original text
    x[n] = R["feature"] + 0; y[n] = R["target"] + 0
}
END {
    if (failed) { exit 1 }
    in_end = 1
    if (state != 2) { fail("missing closing \"]\" (truncated file?)") }

    mx = 0; my = 0
    for (i = 1; i <= n; i++) { mx += x[i]; my += y[i] }
    if (n > 0) { mx = mx / n; my = my / n }
    sxx = 0; sxy = 0; syy = 0
    for (i = 1; i <= n; i++) {
        sxx += (x[i] - mx) * (x[i] - mx)
        sxy += (x[i] - mx) * (y[i] - my)
        syy += (y[i] - my) * (y[i] - my)
    }

    if (mode == "train") {
        if (n < 2) { fail("need at least 2 records to fit a line, got " n) }
        if (sxx == 0) { fail("feature has zero variance; the slope is undefined") }
        b = sxy / sxx
        a = my - b * mx
        as = sprintf("%.6f", a); bs = sprintf("%.6f", b)
    } else {
        if (n < 1) { fail("no records to score") }
        as = a_in; bs = b_in
    }
    a = as + 0; b = bs + 0

    ssr = 0
    print "[" > out
    for (i = 1; i <= n; i++) {
        p = sprintf("%.4f", a + b * x[i])
        r = sprintf("%.4f", y[i] - (a + b * x[i]))
        d = y[i] - (a + b * x[i])
        ssr += d * d
        print "{\"id\":" id[i] ",\"date\":" date[i] ",\"feature\":" xs[i] ",\"target\":" ys[i] \
              ",\"prediction\":" p ",\"residual\":" r "}" (i < n ? "," : "") > out
    }
    print "]" > out
    close(out)

    # R^2 = 1 - SS_res / SS_tot; if the target is constant, SS_tot is 0 and
    # R^2 is undefined: report 1 for a perfect fit, 0 otherwise.
    if (syy > 0) { r2 = 1 - ssr / syy } else { r2 = (ssr == 0) ? 1 : 0 }
    rmse = root(ssr / n)

    if (mode == "train") {
        printf "{\"kind\":\"ols\",\"intercept\":%s,\"slope\":%s,\"n\":%d,\"trained_at_run\":\"%s\"}\n", \
            as, bs, n, run_id > model_out
        close(model_out)
    }
    printf "%d %s %s %.4f %.4f\n", n, as, bs, r2, rmse
}' "$IN")
[ -s "$tmp_scores" ] || die "failed to write $tmp_scores"
if [ "$MODE" = train ]; then
    [ -s "$tmp_model" ] || die "failed to write $tmp_model"
fi

set -- $summary
n=$1 a=$2 b=$3 r2=$4 rmse=$5

# Both outputs are complete; publish them.
if [ "$MODE" = train ]; then
    mv -f "$tmp_model" "$MODEL"
    tmp_model=
fi
mv -f "$tmp_scores" "$OUT"
tmp_scores=

echo "$WF_TASK: read $n records from $IN"
if [ "$MODE" = train ]; then
    echo "$WF_TASK: fitted target = $a + $b * feature"
    echo "$WF_TASK: wrote $MODEL"
fi
echo "$WF_TASK: R^2=$r2 RMSE=$rmse"
echo "$WF_TASK: wrote $OUT"

{
    echo "params=intercept=$a;slope=$b"
    echo "score=$r2"
    echo "rmse=$rmse"
    echo "artifact_path=$OUT"
} >> "$WF_METRICS"

echo "$WF_TASK: done"
