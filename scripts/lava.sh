#!/usr/bin/env bash
# The bench kernel as LAVA jobs. For now: --local runs the QEMU device type through Debian's
# lava-run on this machine (as root, no server) and collects the job's log into a results file.
#   scripts/lava.sh --local [--selftest] [--suite LIST] [--pool-pages LIST] [--out DIR]
# The logic is in tools/ptplab/lava.py.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/lib.sh
export PYTHONPATH="$PWD/tools${PYTHONPATH:+:$PYTHONPATH}"
ensure_venv
build_kernel
build_host_runner
exec "$PY" -m ptplab lava "$@"
