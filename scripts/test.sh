#!/usr/bin/env bash
# Every test: formatting, lints (warnings denied), the lab's unit/property tests, the bench
# kernel booted under QEMU/TCG (selftest, bad command lines, faults), the bench job's
# behaviour, and the notebooks. Sets up what it needs on a fresh machine.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/lib.sh
export PYTHONPATH="$PWD/tools${PYTHONPATH:+:$PYTHONPATH}"

step() { echo; echo "== $*"; }

step setup
ensure_qemu
ensure_grub
ensure_pytest

step "format"
cargo fmt --all --check
(cd bench-kernel && cargo fmt --check)

step "clippy (warnings denied)"
cargo clippy --quiet -p lab --features std --all-targets -- -D warnings
cargo clippy --quiet -p lab -- -D warnings
(cd bench-kernel && cargo clippy --quiet --release -- -D warnings)

step "lab: unit and property tests"
cargo test --quiet -p lab --features std

step "builds: kernel, host runner, criterion benches"
build_kernel
build_host_runner
cargo bench --quiet -p lab --features std --no-run

step "kernel under TCG, bench job, notebooks (pytest)"
python3 -m pytest -q tools/tests notebooks
