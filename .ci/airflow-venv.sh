#!/usr/bin/env bash
# Installs the real Apache Airflow that tests/airflow.rs checks `wf export --to airflow` against
# (DagBag import, `airflow dags test`), into a virtualenv outside the checkout so that later runs
# on the same machine reuse it. Never fails CI by itself: where PyPI or python3 cannot be had, it
# says so and tests/airflow.rs skips with the same message.
set -u
venv="${WF_AIRFLOW_VENV:-$HOME/.cache/wf-airflow-venv}"
version="3.3.2"
if [ -x "$venv/bin/airflow" ] && "$venv/bin/python" -c "import airflow, sys; sys.exit(airflow.__version__ != '$version')" 2>/dev/null; then
  echo "airflow $version: $venv"
  exit 0
fi
if ! command -v python3 >/dev/null 2>&1; then
  echo "airflow: skipped (no python3); tests/airflow.rs will skip"
  exit 0
fi
echo "airflow: installing apache-airflow==$version into $venv (a few minutes, once per machine)"
rm -rf "$venv"
if python3 -m venv "$venv" && "$venv/bin/pip" install --quiet --disable-pip-version-check "apache-airflow==$version"; then
  echo "airflow $version: installed in $venv"
else
  echo "airflow: could not be installed (no package registry?); tests/airflow.rs will skip"
  rm -rf "$venv"
fi
exit 0
