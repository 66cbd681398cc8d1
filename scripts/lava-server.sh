#!/usr/bin/env bash
# A LAVA server on this machine, bound to 127.0.0.1: PostgreSQL, lava-server's web front and
# scheduler, a worker with the lab's devices (QEMU, the network-boot stand-ins), and the lavacli
# identity `ptplab-local`.
#   scripts/lava-server.sh start|stop|status
# Sets up what it needs first (lava-server from Debian's main suite, nothing removed). The
# logic is in tools/ptplab/lavaserver.py; docs/fleet.md says how a lab uses it.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/lib.sh
export PYTHONPATH="$PWD/tools${PYTHONPATH:+:$PYTHONPATH}"
case "${1:-}" in
    start) timed "set-up of packages" ensure qemu grub ovmf lava lava-server ;;  # the stand-ins boot QEMU
    stop|status) ;;
    *) echo "usage: scripts/lava-server.sh start|stop|status" >&2; exit 2 ;;
esac
exec python3 -m ptplab lava-server "$@"
