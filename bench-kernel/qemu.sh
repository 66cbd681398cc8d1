#!/usr/bin/env bash
# Build bench-kernel (release) and boot it under QEMU/TCG via PVH.
# Arguments become the kernel command line (-append), e.g. `./qemu.sh fault=pf`.
# Exit status is QEMU's: 33 = success, 35 = failure, 124 = timeout, other = crash.
# Env: TIMEOUT (seconds, default 30), MEM (default 1G).
set -euo pipefail
cd "$(dirname "$0")"
nice cargo build --release
exec timeout "${TIMEOUT:-30}" qemu-system-x86_64 \
    -accel tcg -cpu max -m "${MEM:-1G}" \
    -nographic -no-reboot -serial stdio -display none -monitor none \
    -device isa-debug-exit,iobase=0xf4,iosize=0x04 \
    -kernel target/x86_64-unknown-linux-gnu/release/bench-kernel \
    -append "$*"
