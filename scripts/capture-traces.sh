#!/usr/bin/env bash
# Record a program's lifetime into results/traces/NAME/ (or --out DIR): strace -f of its memory
# and process calls, and its layouts at each exec and exit, without file names, paths or
# contents. Without a command, the lab's set of programs. The logic is in tools/ptplab/capture.py.
#   scripts/capture-traces.sh NAME [--out DIR] [--class CLASS] [--user USER] -- COMMAND...
#   scripts/capture-traces.sh [--out DIR] [NAME]     the lab's set (or its one program NAME)
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/lib.sh
export PYTHONPATH="$PWD/tools${PYTHONPATH:+:$PYTHONPATH}"
build_host_runner
exec python3 -m ptplab capture-traces "$@"
