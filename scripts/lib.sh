# Shared set-up steps for scripts/*.sh (sourced, not run). Each installs what is missing, as
# root with apt-get/pip, or says exactly what to install. Installing never removes a package
# (apt-get --no-remove: a conflict stops the install and is shown), and the package manager's
# output goes to a log, shown only when it fails.

SETUP_LOG="${TMPDIR:-/tmp}/ptplab-setup.log"

# apt_install PKG...: install Debian packages without removing any; one line unless it fails.
apt_install() {
    if [ "$(id -u)" != 0 ] || ! command -v apt-get >/dev/null; then
        echo "setup: error: install the Debian packages $* (or run this script as root)" >&2
        return 1
    fi
    echo "setup: installing $* (apt-get, log in $SETUP_LOG)" >&2
    if ! { DEBIAN_FRONTEND=noninteractive apt-get update -qq &&
           DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends --no-remove "$@"
         } >"$SETUP_LOG" 2>&1 </dev/null; then
        echo "setup: error: apt-get could not install $* without removing anything; last lines of $SETUP_LOG:" >&2
        tail -n 15 "$SETUP_LOG" >&2
        return 1
    fi
}

ensure_qemu() {
    command -v qemu-system-x86_64 >/dev/null && return 0
    apt_install qemu-system-x86
}

# GRUB for BIOS and UEFI images (grub-mkrescue with both platforms' modules), xorriso, mtools.
ensure_grub() {
    command -v grub-mkrescue >/dev/null && command -v xorriso >/dev/null && command -v mformat >/dev/null &&
        [ -d /usr/lib/grub/i386-pc ] && [ -d /usr/lib/grub/x86_64-efi ] && return 0
    apt_install grub-pc-bin grub-efi-amd64-bin grub-common xorriso mtools
}

# OVMF: UEFI firmware for QEMU (the image tests boot under it).
ensure_ovmf() {
    [ -f /usr/share/ovmf/OVMF.fd ] && return 0
    apt_install ovmf
}

ensure_bochs() {
    command -v bochs >/dev/null && [ -f /usr/share/bochs/BIOS-bochs-latest ] &&
        [ -f /usr/lib/x86_64-linux-gnu/bochs/plugins/libbx_sdl2_gui.so ] && return 0
    apt_install bochs bochs-sdl bochsbios vgabios
}

# ensure_venv: the project's virtual environment .venv with tools/requirements.txt (pinned),
# rebuilt when that file changes; afterwards "$PY" is its python.
ensure_venv() {
    PY="$PWD/.venv/bin/python"
    if [ -x "$PY" ] && cmp -s tools/requirements.txt .venv/requirements.txt; then return 0; fi
    echo "setup: installing tools/requirements.txt into .venv (pip, log in $SETUP_LOG)" >&2
    rm -rf .venv
    { python3 -m venv .venv &&
      "$PY" -m pip install --quiet --disable-pip-version-check -r tools/requirements.txt &&
      cp tools/requirements.txt .venv/requirements.txt
    } >"$SETUP_LOG" 2>&1 || {
        echo "setup: error: could not set up .venv (python3-venv and network needed); last lines of $SETUP_LOG:" >&2
        tail -n 15 "$SETUP_LOG" >&2
        return 1
    }
}

build_kernel() {
    (cd bench-kernel && nice cargo build --release --quiet)
}

build_host_runner() {
    nice cargo build --release --quiet -p ptp-lab --features std --bin ptp-host
}
