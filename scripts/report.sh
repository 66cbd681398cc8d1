#!/usr/bin/env bash
# The decision report (Markdown): what the standard pool size buys and what changes at N, from
# the real layouts, the lab's capacity model and recorded runs.
#   scripts/report.sh [RESULTS FILE] --out DIR
# The logic lives in tools/ptplab/report.py; this only prepares and hands over.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/lib.sh
export PYTHONPATH="$PWD/tools${PYTHONPATH:+:$PYTHONPATH}"
ensure_venv
build_host_runner
exec "$PY" -m ptplab report "$@"
