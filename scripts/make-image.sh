#!/usr/bin/env bash
# The real-hardware image: one file that boots from a CD and from a USB stick, under BIOS and
# under UEFI, with a GRUB menu (the default run, the standard suites, a pool-size sweep, the
# selftest, the TLB suite on every CPU). Results go to COM1 and to the screen.
#   scripts/make-image.sh [FILE] [bench options for the default entry]   (default FILE: target/ptplab.iso)
#   scripts/make-image.sh --netboot DIR [bench options]   the same menu over the network: DIR/tftp
#                                                           (GRUB, PXE) and DIR/http (iPXE)
# Writing it to a USB stick, booting from the network, reading the results: docs/real-hardware.md.
set -euo pipefail
cd "$(dirname "$0")/.."
if [ "${1:-}" = --netboot ]; then exec scripts/bench.sh "$@"; fi
out=target/ptplab.iso
if [ $# -gt 0 ] && [ "${1#-}" = "$1" ]; then out=$1; shift; fi
exec scripts/bench.sh --image "$out" "$@"
