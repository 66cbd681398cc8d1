#!/usr/bin/env bash
# The bench kernel as LAVA jobs. --local runs a job through Debian's lava-run on this machine
# (as root, no server) on the QEMU device type or a network-boot stand-in (--device), says the
# job's result and test cases, and collects the job's log into a results file (the job's log
# and LAVA's results beside it); --jobs writes jobs for a lab's real machines; --server submits
# a job per device and suite choice to a LAVA server, waits, collects and compares them.
#   scripts/lava.sh --local [--device NAME] [--selftest] [--suite LIST] [--pool-pages LIST] [--timeout S] [--out DIR]
#   scripts/lava.sh --jobs DIR --artifacts URL [bench options]
#   scripts/lava.sh --server IDENTITY [--choices KEY,...] [bench options] [--out DIR]
# Sets up what it needs (QEMU, GRUB for the ISO, LAVA's dispatcher), as scripts/bench.sh does.
# The logic is in tools/ptplab/lava.py.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/lib.sh
export PYTHONPATH="$PWD/tools${PYTHONPATH:+:$PYTHONPATH}"

# The options and their --help come from the lab's options table, in the host runner
# (ptp-host plan): it is built first; every option is checked before anything is installed.
if [ -x target/release/ptp-host ]; then
    build_host_runner  # up to date in a second, silently: a bad option stays a one-line answer
else
    echo "lava: building the host runner first (it checks the options)" >&2
    timed "build of the host runner" build_host_runner
fi
for a in "$@"; do
    case "$a" in
        -h|--help) exec python3 -m ptplab lava --help ;;
    esac
done
mkdir -p target
export PTPLAB_PLAN="$PWD/target/plan-$$.json"
needs=$(python3 -m ptplab lava --validate "$@")
timed "set-up of packages" ensure $(echo "$needs" | tr ' ' '\n' | grep -vx kernel || true)
timed "set-up of .venv" ensure_venv
case " $needs " in *" kernel "*) timed "build of the kernel" build_kernel ;; esac
exec "$PY" -m ptplab lava "$@"
