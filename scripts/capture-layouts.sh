#!/usr/bin/env bash
# Record the address-space layouts of a set of real programs into results/layouts/ (ranges,
# permissions and VmPTE only: no file names, paths or contents). The logic is in
# tools/ptplab/layouts.py; programs that are not installed are skipped and named.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/lib.sh
export PYTHONPATH="$PWD/tools${PYTHONPATH:+:$PYTHONPATH}"
build_host_runner
exec python3 -m ptplab layouts capture "$@"
