#!/usr/bin/env bash
# The main job: set up (QEMU, builds), run the suites, write one new results/ file.
#   scripts/bench.sh [--accel auto|kvm|tcg] [--pool-pages 1024,4096] [--suite alloc,map,ptp]
#                    [--quick] [--selftest] [--out DIR] [--timeout S] [--memory MiB] [--seed N]
#   scripts/bench.sh --host ...          the same table in a host process (simulated memory)
#   scripts/bench.sh --criterion ... [-- CRITERION ARGS]   the same table under criterion
# The logic lives in tools/ptplab (tested); this only prepares and hands over.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/lib.sh
export PYTHONPATH="$PWD/tools${PYTHONPATH:+:$PYTHONPATH}"

kernel=1
for a in "$@"; do
    case "$a" in
        --) break ;;
        -h|--help) exec python3 -m ptplab bench --help ;;
        --host|--criterion) kernel=0 ;;
    esac
done

# The host runner also tells the Python tools what the Rust side declares (ptp-host facts).
build_host_runner
if [ "$kernel" = 1 ]; then
    ensure_qemu
    build_kernel
fi
exec python3 -m ptplab bench "$@"
