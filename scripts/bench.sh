#!/usr/bin/env bash
# The main job: set up (QEMU, builds), run the suites, write one new results/ file.
#   scripts/bench.sh [--accel auto|kvm|tcg] [--pool-pages 1024,4096] [--suite alloc,map,ptp]
#                    [--quick] [--selftest] [--out DIR] [--timeout S] [--memory MiB] [--seed N]
#   scripts/bench.sh --host ...          the same table in a host process (simulated memory)
#   scripts/bench.sh --criterion ... [-- CRITERION ARGS]   the same table under criterion
#   scripts/bench.sh --image FILE ...    write the real-hardware image (scripts/make-image.sh)
#   scripts/bench.sh --help              every option
# The logic lives in tools/ptplab (tested); this only checks, prepares and hands over.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/lib.sh
export PYTHONPATH="$PWD/tools${PYTHONPATH:+:$PYTHONPATH}"

for a in "$@"; do
    case "$a" in
        --) break ;;
        -h|--help) exec python3 -m ptplab bench --help ;;
    esac
done

# Every option is checked before anything is installed or built: first what needs nothing,
# then, with the host runner (which also tells the tools the lab's limits and names), the
# rest; that check also says what this run needs set up (qemu, grub, bochs, kernel).
python3 -m ptplab bench --validate "$@" >/dev/null
timed "build of the host runner" build_host_runner
needs=$(python3 -m ptplab bench --validate "$@")
timed "set-up of packages" ensure $(echo "$needs" | tr ' ' '\n' | grep -vx kernel || true)
case " $needs " in *" kernel "*) timed "build of the kernel" build_kernel ;; esac
timed "set-up of .venv" ensure_venv  # the report after the run draws its plots with matplotlib
exec "$PY" -m ptplab bench "$@"
