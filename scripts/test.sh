#!/usr/bin/env bash
# Every test: formatting, lints (warnings denied), the lab's unit/property tests, the bench
# kernel booted under QEMU/TCG and Bochs (selftest, SMP, bad command lines, faults), the
# real-hardware image under SeaBIOS and OVMF (CD, USB stick, screen), the bench job's
# behaviour, and the notebooks; last, that nothing the run started is still running. Sets up
# what it needs on a fresh machine.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/lib.sh
export PYTHONPATH="$PWD/tools${PYTHONPATH:+:$PYTHONPATH}"
# Every process this run starts inherits the tag, setsid'd ones too: the last step finds those
# still alive.
export PTPLAB_RUN_TAG="test-$$-$(date +%s%N)-$RANDOM"

trap finish_run EXIT  # lib.sh: its last step, however it ends, is that nothing it started lives on

step setup
ensure --all
ensure_venv

step "format"
cargo fmt --all --check
(cd bench-kernel && cargo fmt --check)

step "clippy (warnings denied): std and no_std, and the kernel"
cargo clippy --quiet -p vystem-ptp -p ptp-lab --features ptp-lab/std --all-targets -- -D warnings
cargo clippy --quiet -p vystem-ptp -p ptp-lab -- -D warnings
(cd bench-kernel && cargo clippy --quiet --release -- -D warnings)

step "vystem-ptp's docs (what docs.rs shows a kernel developer): no warning, with and without std"
RUSTDOCFLAGS="-D warnings" cargo doc --quiet -p vystem-ptp --no-deps
RUSTDOCFLAGS="-D warnings" cargo doc --quiet -p vystem-ptp --no-deps --features std

step "vystem-ptp and ptp-lab: unit, property and doc tests"
cargo test --quiet -p vystem-ptp --features std
cargo test --quiet -p ptp-lab --features std

step "builds: kernel, host runner, criterion driver"
build_kernel
build_host_runner
cargo bench --quiet -p ptp-lab --features std --no-run

step "kernel under TCG, bench job, notebooks (pytest)"
"$PY" -m pytest -q --durations=10 tools/tests notebooks  # the slowest ten, for the time budget
