#!/usr/bin/env bash
# Build bench-kernel (release) and boot it under QEMU/TCG via PVH, with the lab's one QEMU
# command line (tools/ptplab/qemu.py: qemu_args). Arguments become the kernel command line,
# e.g. `./qemu.sh fault=pf`. Exit status is QEMU's (see ptp_lab::exit), 124 = timeout.
# Env: TIMEOUT (seconds, default 30), MEM_MIB (default 1024).
set -euo pipefail
cd "$(dirname "$0")"
nice cargo build --release
PYTHONPATH="$PWD/../tools${PYTHONPATH:+:$PYTHONPATH}" exec python3 -m ptplab boot "$@"
