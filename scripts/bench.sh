#!/usr/bin/env bash
# The main job: set up (QEMU, builds), run the suites, write one new results/ file.
#   scripts/bench.sh [--accel auto|kvm|tcg|bochs] [--pool-pages 1024,4096] [--suite alloc,map] ...
#   scripts/bench.sh --host ...          the same table in a host process (simulated memory)
#   scripts/bench.sh --criterion ... [-- CRITERION ARGS]   the same table under criterion
#   scripts/bench.sh --image FILE ...    write the real-hardware image (scripts/make-image.sh)
#   scripts/bench.sh --help              every option
# The logic lives in tools/ptplab (tested); this only checks, prepares and hands over.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/lib.sh
export PYTHONPATH="$PWD/tools${PYTHONPATH:+:$PYTHONPATH}"

# The options, their checks and the --help all come from the lab's options table, which the
# host runner holds (ptp-host plan): it is built first, then every option is checked once,
# before anything is installed or the kernel built; that check also says what this run needs
# set up (qemu, grub, bochs, kernel) and leaves its plan for the run below (PTPLAB_PLAN).
if [ -x target/release/ptp-host ]; then
    build_host_runner  # up to date in a second, silently: a bad option stays a one-line answer
else
    echo "bench: building the host runner first (it checks the options)" >&2
    timed "build of the host runner" build_host_runner
fi
for a in "$@"; do
    case "$a" in
        --) break ;;
        -h|--help|--validate) exec python3 -m ptplab bench "$@" ;;
    esac
done
mkdir -p target
export PTPLAB_PLAN="$PWD/target/plan-$$.json"
needs=$(python3 -m ptplab bench --validate "$@")
timed "set-up of packages" ensure $(echo "$needs" | tr ' ' '\n' | grep -vx kernel || true)
case " $needs " in *" kernel "*) timed "build of the kernel" build_kernel ;; esac
timed "set-up of .venv" ensure_venv  # the report after the run draws its plots with matplotlib
exec "$PY" -m ptplab bench "$@"
