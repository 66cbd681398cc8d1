#!/bin/bash
# The done criterion of issue 37, on a clean clone: start, the selftest on every device of the server, stop.
cd /tmp/d
export CI=true
t0=$(date +%s)
echo "\$ git -C /tmp/d log --oneline -1: $(git log --oneline -1 | cut -c1-60)"
echo "\$ scripts/lava-server.sh start"; scripts/lava-server.sh start; echo "rc=$? after $(( $(date +%s) - t0 )) s"
echo "\$ scripts/lava.sh --server ptplab-local --selftest --out results/lava-server-run"
scripts/lava.sh --server ptplab-local --selftest --out results/lava-server-run; echo "rc=$? after $(( $(date +%s) - t0 )) s"
echo "\$ lavacli -i ptplab-local jobs list"; lavacli -i ptplab-local jobs list --limit 12
echo "\$ scripts/lava-server.sh stop"; scripts/lava-server.sh stop; echo "rc=$? after $(( $(date +%s) - t0 )) s"
echo "\$ scripts/lava-server.sh status"; scripts/lava-server.sh status; echo "rc=$?"
