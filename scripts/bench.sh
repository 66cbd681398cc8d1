#!/usr/bin/env bash
# The main job: set up (QEMU, builds), run the suites, write one new results/ file.
#   scripts/bench.sh [--accel auto|kvm|tcg] [--pool-pages 1024,4096] [--suite alloc,map,ptp]
#                    [--quick] [--out DIR] [--host] [--timeout S] [--memory MiB]
#   scripts/bench.sh --criterion     criterion benches on the host + the named speed targets
# The logic lives in tools/ptplab (tested); this only prepares and hands over.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/lib.sh
export PYTHONPATH="$PWD/tools${PYTHONPATH:+:$PYTHONPATH}"

host=0
for a in "$@"; do
    case "$a" in
        -h|--help) exec python3 -m ptplab bench --help ;;
        --host) host=1 ;;
        --criterion)
            shift
            nice cargo bench -p lab --features std "$@"
            exec python3 -m ptplab criterion --dir target/criterion --out results ;;
    esac
done

if [ "$host" = 1 ]; then
    build_host_runner
else
    ensure_qemu
    build_kernel
fi
exec python3 -m ptplab bench "$@"
