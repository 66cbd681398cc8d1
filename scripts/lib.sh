# Shared set-up steps for scripts/*.sh (sourced, not run). Each installs what is missing, as
# root with apt-get/pip, or says exactly what to install. Installing never removes or
# downgrades a package (a conflict stops the install and is named), and the package manager's
# output goes to a log, named only when it fails.

SETUP_LOG="${TMPDIR:-/tmp}/ptplab-setup.log"

# timed LABEL CMD...: run CMD, then say on stderr how long it took (first-run figures come from
# these lines). A failing CMD returns its status unsaid.
timed() {
    local label=$1 t=$SECONDS
    shift
    "$@" || return
    echo "time: $label $((SECONDS - t)) s" >&2
}

# step NAME: start a step of a long script, ending the one before with its time; `step` alone
# ends the last (scripts/test.sh calls it on exit, so a failing step still says its time).
STEP_NAME= STEP_START=$SECONDS
step() {
    [ -z "$STEP_NAME" ] || echo "-- $STEP_NAME: $((SECONDS - STEP_START)) s (total $SECONDS s)"
    STEP_NAME=$* STEP_START=$SECONDS
    [ $# -eq 0 ] || { echo; echo "== $*"; }
}

# finish_run: a long script's EXIT trap. Its last step runs however the script ends (a failed
# step, a test stopped at its time limit): every process the run started (those whose
# environment holds its PTPLAB_RUN_TAG) and still alive is named and killed, and a survivor
# fails a run that had passed; the script's own status is kept otherwise.
finish_run() {
    local rc=$?
    step "no process left behind"
    python3 -m ptplab.limits survivors --except $$ "$PTPLAB_RUN_TAG" || { [ "$rc" -ne 0 ] || rc=1; }
    step
    exit "$rc"
}

# bounded SECONDS CMD...: CMD under timeout(1): its whole process group gets TERM after SECONDS
# and KILL 10 s later (status 124, or 137). timeout(1) puts CMD in a process group of its own,
# which a terminal's Ctrl-C does not reach: an INT, TERM or HUP this script gets is passed on.
bounded() {
    local limit=$1 pid rc=0
    shift
    timeout -k 10 "$limit" "$@" &
    pid=$!
    trap 'kill -TERM "$pid" 2>/dev/null' INT TERM HUP
    while :; do
        wait "$pid" && rc=0 || rc=$?
        kill -0 "$pid" 2>/dev/null || break  # still running: wait returned for a signal, wait again
    done
    trap - INT TERM HUP
    return "$rc"
}

# ensure NEED...: the Debian packages of each need (qemu, grub, ovmf, bochs) where its files are
# missing, removing and downgrading nothing; the plan (which suite, which packages) is
# tools/ptplab/packages.py's, tested against a fresh machine's package state.
ensure() {
    [ $# -gt 0 ] || return 0
    : >"$SETUP_LOG"
    PYTHONPATH="$PWD/tools" python3 -m ptplab setup --log "$SETUP_LOG" "$@"
}

# ensure_venv: the project's virtual environment .venv with tools/requirements.txt (pinned),
# rebuilt when that file changes; afterwards "$PY" is its python. Creating it and pip's installs
# take at most PTPLAB_VENV_TIMEOUT seconds (default 600; then the whole process group is
# stopped), pip waiting at most 60 s for a connection and retrying twice.
ensure_venv() {
    PY="$PWD/.venv/bin/python"
    if [ -x "$PY" ] && cmp -s tools/requirements.txt .venv/requirements.txt; then return 0; fi
    local limit=${PTPLAB_VENV_TIMEOUT:-600} rc=0
    echo "setup: installing tools/requirements.txt into .venv (pip, log in $SETUP_LOG)" >&2
    rm -rf .venv
    bounded "$limit" sh -c 'python3 -m venv .venv &&
        .venv/bin/python -m pip install --quiet --disable-pip-version-check --timeout 60 --retries 2 \
            -r tools/requirements.txt' >"$SETUP_LOG" 2>&1 || rc=$?
    if [ "$rc" -eq 0 ]; then
        cp tools/requirements.txt .venv/requirements.txt
        return 0
    fi
    if [ "$rc" -eq 124 ] || [ "$rc" -eq 137 ]; then
        echo "setup: error: setting up .venv timed out after $limit s (pip stopped; a slow or unreachable" \
             "package index?); last lines of $SETUP_LOG:" >&2
    else
        echo "setup: error: could not set up .venv (python3-venv and network needed); last lines of $SETUP_LOG:" >&2
    fi
    tail -n 15 "$SETUP_LOG" >&2
    return 1
}

build_kernel() {
    (cd bench-kernel && nice cargo build --release --quiet)
}

build_host_runner() {
    nice cargo build --release --quiet -p ptp-lab --features std --bin ptp-host
}
