# Shared set-up steps for scripts/*.sh (sourced, not run). Each installs what is missing,
# as root with apt-get/pip, or says exactly what to install.

ensure_qemu() {
    command -v qemu-system-x86_64 >/dev/null && return 0
    if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
        echo "setup: installing qemu-system-x86 (apt-get)" >&2
        DEBIAN_FRONTEND=noninteractive apt-get update -qq >&2 &&
            DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends qemu-system-x86 >&2 &&
            return 0
        echo "setup: error: apt-get could not install qemu-system-x86" >&2
        return 1
    fi
    echo "setup: error: qemu-system-x86_64 is missing; install the Debian package qemu-system-x86 (or run this script as root)" >&2
    return 1
}

ensure_grub() {
    command -v grub-mkrescue >/dev/null && command -v xorriso >/dev/null && command -v mformat >/dev/null &&
        [ -d /usr/lib/grub/i386-pc ] && return 0
    if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
        echo "setup: installing grub-pc-bin grub-common xorriso mtools (apt-get)" >&2
        DEBIAN_FRONTEND=noninteractive apt-get update -qq >&2 &&
            DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
                grub-pc-bin grub-common xorriso mtools >&2 && return 0
        echo "setup: error: apt-get could not install the GRUB ISO tools" >&2
        return 1
    fi
    echo "setup: error: grub-mkrescue/xorriso/mtools missing; install grub-pc-bin grub-common xorriso mtools" >&2
    return 1
}

ensure_pytest() {
    python3 -c 'import pytest' 2>/dev/null && return 0
    echo "setup: installing pytest (pip)" >&2
    python3 -m pip install --quiet --disable-pip-version-check pytest >&2
}

build_kernel() {
    (cd bench-kernel && nice cargo build --release --quiet)
}

build_host_runner() {
    nice cargo build --release --quiet -p ptp-lab --features std --bin ptp-host
}
