#!/usr/bin/env bash
# Stop the loopback SLURM test cluster started by tests/slurm/start-cluster.sh.
# Idempotent: daemons that are not running are skipped. Config, the accounting
# database and job state are kept, so a later start-cluster.sh is fast.
#
#   tests/slurm/stop-cluster.sh            # stop slurmd, slurmctld, slurmdbd, mariadb, munged
#   KEEP_DB=1 tests/slurm/stop-cluster.sh  # leave mariadb and munged running
set -euo pipefail

RUN_DIR=/run/slurm
KEEP_DB="${KEEP_DB:-0}"

log() { echo "[stop-cluster] $*"; }

[[ $(id -u) -eq 0 ]] || { echo "[stop-cluster] ERROR: must run as root" >&2; exit 1; }

# stop <name> <pidfile> [exe-name]: SIGTERM the pid from the pidfile (only if it
# really is that daemon), wait up to 30s, then SIGKILL.
stop() {
    local name=$1 pidfile=$2 exe=${3:-$1} pid i
    if [[ ! -s $pidfile ]]; then
        log "$name not running (no pidfile)"; return 0
    fi
    pid=$(<"$pidfile")
    if ! [[ $pid =~ ^[0-9]+$ ]] || [[ ! -r /proc/$pid/comm ]] \
       || [[ $(</proc/"$pid"/comm) != "$exe"* ]]; then
        log "$name not running (stale pidfile)"; rm -f "$pidfile"; return 0
    fi
    log "stopping $name (pid $pid)"
    kill -TERM "$pid" 2>/dev/null || true
    for ((i = 0; i < 150; i++)); do
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.2
    done
    if kill -0 "$pid" 2>/dev/null; then
        log "$name did not exit, sending SIGKILL"
        kill -KILL "$pid" 2>/dev/null || true
    fi
    rm -f "$pidfile"
}

stop slurmd    "$RUN_DIR/slurmd.pid"
stop slurmctld "$RUN_DIR/slurmctld.pid"
stop slurmdbd  "$RUN_DIR/slurmdbd.pid"
if [[ $KEEP_DB != 1 ]]; then
    # mysqld_safe restarts mariadbd if it dies; a clean shutdown via mysqladmin
    # makes both exit.
    if [[ -s /run/mysqld/mysqld.pid ]] && mysqladmin --protocol=socket -uroot ping >/dev/null 2>&1; then
        log "stopping mariadb"
        mysqladmin --protocol=socket -uroot shutdown || true
        for ((i = 0; i < 150; i++)); do
            [[ -e /run/mysqld/mysqld.pid ]] || break
            sleep 0.2
        done
    else
        log "mariadb not running"
    fi
    stop munged /run/munge/munged.pid
fi
log "done"
