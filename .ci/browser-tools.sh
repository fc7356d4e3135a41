#!/usr/bin/env bash
# Installs headless Chromium and its WebDriver (Debian's `chromium` and `chromium-driver`) for the
# browser test of `wf serve` (tests/serve.rs, headless_chromium_reviews_and_approves_a_run).
# Never fails CI by itself: where apt-get or the packages cannot be had, it says so and the test
# skips with the same message.
set -u
if [ -x /usr/bin/chromium ] && [ -x /usr/bin/chromedriver ]; then
  echo "chromium: $(/usr/bin/chromium --version 2>/dev/null | head -1)"
  exit 0
fi
if ! command -v apt-get >/dev/null 2>&1 || [ "$(id -u)" != 0 ]; then
  echo "chromium: skipped (needs apt-get as root); the browser test of tests/serve.rs will skip"
  exit 0
fi
echo "chromium: installing chromium and chromium-driver with apt-get (once per machine)"
if DEBIAN_FRONTEND=noninteractive apt-get update -qq >/dev/null 2>&1 &&
   DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium chromium-driver >/dev/null 2>&1; then
  echo "chromium: $(/usr/bin/chromium --version 2>/dev/null | head -1)"
else
  echo "chromium: could not be installed; the browser test of tests/serve.rs will skip"
fi
exit 0
