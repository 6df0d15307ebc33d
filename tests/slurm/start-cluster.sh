#!/usr/bin/env bash
# Bring up a single-node SLURM test cluster on loopback (Debian 12, no systemd).
#
#   tests/slurm/start-cluster.sh    # as root; idempotent; a healthy cluster -> <1 s
#   tests/slurm/stop-cluster.sh     # stops the daemons again
#
# Components: munged, mariadb (for slurmdbd), slurmdbd, slurmctld, slurmd.
# mariadb, slurmctld and slurmd bind to 127.0.0.1; slurmdbd has no bind option
# and listens on *:6819 (munge-authenticated). See tests/slurm/NOTES.md. The node is called "localhost", the only
# partition "debug" (default), the cluster "mtrl". Accounting via slurmdbd is
# set up because snakemake-executor-plugin-slurm queries job states with
# `sacct` by default and validates/guesses accounts with sacctmgr/sacct.
#
# Environment overrides:
#   MTRL_SLURM_CLUSTER   cluster name            (default: mtrl)
#   MTRL_SLURM_DB_PASS   MariaDB password of the slurmdbd user (default: mtrl-slurmdbd)
#   MTRL_SLURM_TIMEOUT   seconds to wait for each daemon     (default: 60)
#   MTRL_SLURM_FAKE_GPUS number of *fake* GPUs (GRES gpu backed by /dev/null etc.) the
#                        node advertises, so rules with `resources: gpu=1` can
#                        be scheduled here; 0 disables     (default: 1)
set -euo pipefail

CLUSTER="${MTRL_SLURM_CLUSTER:-mtrl}"
DB_NAME="slurm_acct_db"
DB_USER="slurm"
DB_PASS="${MTRL_SLURM_DB_PASS:-mtrl-slurmdbd}"
TIMEOUT="${MTRL_SLURM_TIMEOUT:-60}"
FAKE_GPUS="${MTRL_SLURM_FAKE_GPUS:-1}"
[[ $FAKE_GPUS =~ ^[0-9]+$ ]] || { echo "MTRL_SLURM_FAKE_GPUS must be an integer" >&2; exit 1; }
NODE="localhost"
PARTITION="debug"

CONF_DIR=/etc/slurm            # Debian's slurm-wlm packages read /etc/slurm/slurm.conf
RUN_DIR=/run/slurm
LOG_DIR=/var/log/slurm
STATE_DIR=/var/lib/slurm/slurmctld
SPOOL_DIR=/var/lib/slurm/slurmd
MARIADB_CNF=/etc/mysql/mariadb.conf.d/90-mtrl-slurmdbd.cnf

PACKAGES=(munge slurmctld slurmd slurm-client slurmdbd mariadb-server)

log() { echo "[start-cluster] $*"; }
die() { echo "[start-cluster] ERROR: $*" >&2; exit 1; }

[[ $(id -u) -eq 0 ]] || die "must run as root"

# wait_for <description> <command...>: poll until the command succeeds.
wait_for() {
    local what=$1; shift
    local deadline=$((SECONDS + TIMEOUT))
    until "$@" >/dev/null 2>&1; do
        if (( SECONDS >= deadline )); then
            die "timed out after ${TIMEOUT}s waiting for ${what} (logs: ${LOG_DIR}, /var/log/munge, /var/lib/mysql)"
        fi
        sleep 0.5
    done
}

# pid_alive <pidfile> <exe-name>: true if the pidfile names a live process of that name.
pid_alive() {
    local pidfile=$1 name=$2 pid
    [[ -s $pidfile ]] || return 1
    pid=$(<"$pidfile")
    [[ $pid =~ ^[0-9]+$ ]] || return 1
    [[ -r /proc/$pid/comm ]] || return 1
    [[ $(</proc/"$pid"/comm) == "$name"* ]]
}

node_state() { timeout 10 sinfo -h -n "$NODE" -o '%t' 2>/dev/null | head -n1; }
node_usable() { [[ $(node_state) =~ ^(idle|mix|alloc|comp)$ ]]; }
sacct_ok() { timeout 10 sacct -n -X -S now-1hours -o JobID >/dev/null 2>&1; }
munge_ok() { munge -n 2>/dev/null | unmunge >/dev/null 2>&1; }
db_ok() { mysqladmin --protocol=socket -uroot ping >/dev/null 2>&1; }
dbd_ok() { timeout 10 sacctmgr -n -P list cluster format=cluster >/dev/null 2>&1; }
ctld_ok() { timeout 10 scontrol ping 2>/dev/null | grep -q 'is UP'; }

# ---------------------------------------------------------------- packages
missing=()
for p in "${PACKAGES[@]}"; do
    if [[ $(dpkg-query -W -f='${Status}' "$p" 2>/dev/null) != "install ok installed" ]]; then
        missing+=("$p")
    fi
done
if (( ${#missing[@]} )); then
    log "installing: ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    # policy-rc.d (if any) keeps apt from starting services; we start them below.
    apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

install -d -m 0755 "$CONF_DIR" "$RUN_DIR" "$LOG_DIR" "$STATE_DIR" "$SPOOL_DIR"
install -d -o munge -g munge -m 0755 /run/munge
install -d -o munge -g munge -m 0700 /var/log/munge /var/lib/munge
install -d -o mysql -g mysql -m 0755 /run/mysqld

# ---------------------------------------------------------------- render configs
# All config text is generated up front so the fast path can tell whether the
# files on disk are current (a changed script => configs rewritten, daemons restarted).

# Hardware as slurmd sees it, e.g.
#   NodeName=vm CPUs=2 Boards=1 SocketsPerBoard=1 CoresPerSocket=2 ThreadsPerCore=1 RealMemory=24105
hw=$(slurmd -C | head -n1)
hw=${hw#NodeName=* }
[[ $hw == *CPUs=*RealMemory=* ]] || die "could not parse 'slurmd -C' output: $hw"

# Fake GPUs: gres/gpu ignores count-only entries, so each fake GPU is backed by
# a harmless character device. Jobs asking for --gpus get CUDA_VISIBLE_DEVICES=0..
# but of course no CUDA device (torch.cuda.is_available() stays False).
FAKE_GPU_FILES=(/dev/null /dev/zero /dev/full /dev/urandom)
(( FAKE_GPUS <= ${#FAKE_GPU_FILES[@]} )) || die "MTRL_SLURM_FAKE_GPUS must be <= ${#FAKE_GPU_FILES[@]}"
gres_node=""
GRES_CONF_TEXT="# written by tests/slurm/start-cluster.sh (MTRL_SLURM_FAKE_GPUS=${FAKE_GPUS})"
for ((i = 0; i < FAKE_GPUS; i++)); do
    GRES_CONF_TEXT+=$'\n'"NodeName=${NODE} Name=gpu File=${FAKE_GPU_FILES[i]}"
done
if (( FAKE_GPUS > 0 )); then gres_node=" Gres=gpu:${FAKE_GPUS}"; fi

MARIADB_CNF_TEXT="# written by tests/slurm/start-cluster.sh: loopback only, values slurmdbd recommends
[mysqld]
bind-address = 127.0.0.1
innodb_buffer_pool_size = 256M
innodb_lock_wait_timeout = 900
innodb_log_file_size = 64M"

SLURMDBD_CONF_TEXT="# written by tests/slurm/start-cluster.sh
AuthType=auth/munge
DbdHost=localhost
DbdAddr=127.0.0.1
DbdPort=6819
SlurmUser=root
LogFile=${LOG_DIR}/slurmdbd.log
PidFile=${RUN_DIR}/slurmdbd.pid
StorageType=accounting_storage/mysql
StorageHost=localhost
StorageUser=${DB_USER}
StoragePass=${DB_PASS}
StorageLoc=${DB_NAME}"

SLURM_CONF_TEXT="# written by tests/slurm/start-cluster.sh -- single-node loopback test cluster
ClusterName=${CLUSTER}
SlurmctldHost=localhost(127.0.0.1)
SlurmUser=root
SlurmdUser=root
SlurmctldPort=6817
SlurmdPort=6818
AuthType=auth/munge
# bind to 127.0.0.1 (what \"localhost\" resolves to) instead of INADDR_ANY
CommunicationParameters=NoCtldInAddrAny,NoInAddrAny
MailProg=/bin/true
StateSaveLocation=${STATE_DIR}
SlurmdSpoolDir=${SPOOL_DIR}
SlurmctldPidFile=${RUN_DIR}/slurmctld.pid
SlurmdPidFile=${RUN_DIR}/slurmd.pid
SlurmctldLogFile=${LOG_DIR}/slurmctld.log
SlurmdLogFile=${LOG_DIR}/slurmd.log
# no cgroups: works in containers / gVisor
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/linux
JobAcctGatherFrequency=30
MpiDefault=none
SchedulerType=sched/backfill
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
DefMemPerCPU=512
ReturnToService=2
SlurmctldTimeout=30
SlurmdTimeout=30
InactiveLimit=0
KillWait=10
MinJobAge=300
AccountingStorageType=accounting_storage/slurmdbd
AccountingStorageHost=localhost
AccountingStoragePort=6819
AccountingStorageTRES=gres/gpu
JobCompType=jobcomp/none
GresTypes=gpu
NodeName=${NODE} NodeAddr=127.0.0.1 NodeHostname=${NODE} ${hw}${gres_node} State=UNKNOWN
PartitionName=${PARTITION} Nodes=${NODE} Default=YES MaxTime=INFINITE State=UP"

# same_content <file> <text>: true if the file holds exactly text + newline.
same_content() { [[ -f $1 ]] && cmp -s "$1" <(printf '%s\n' "$2"); }

# ---------------------------------------------------------------- fast path
if same_content "$MARIADB_CNF" "$MARIADB_CNF_TEXT" \
   && same_content "$CONF_DIR/slurmdbd.conf" "$SLURMDBD_CONF_TEXT" \
   && same_content "$CONF_DIR/slurm.conf" "$SLURM_CONF_TEXT" \
   && same_content "$CONF_DIR/gres.conf" "$GRES_CONF_TEXT" \
   && pid_alive /run/munge/munged.pid munged \
   && pid_alive /run/mysqld/mysqld.pid mariadbd \
   && pid_alive "$RUN_DIR/slurmdbd.pid" slurmdbd \
   && pid_alive "$RUN_DIR/slurmctld.pid" slurmctld \
   && pid_alive "$RUN_DIR/slurmd.pid" slurmd \
   && node_usable && sacct_ok; then
    log "cluster '$CLUSTER' already up and healthy:"
    sinfo
    exit 0
fi

# write_if_changed <dest> <mode> <text>: text -> dest, only if the content differs.
# Returns 0 if the file changed, 1 if it was already up to date.
write_if_changed() {
    local dest=$1 mode=$2 text=$3 tmp
    if same_content "$dest" "$text"; then
        chmod "$mode" "$dest"; return 1
    fi
    tmp=$(mktemp)
    printf '%s\n' "$text" >"$tmp"
    install -m "$mode" "$tmp" "$dest"
    rm -f "$tmp"
    log "wrote $dest"
    return 0
}

# ---------------------------------------------------------------- munge
if [[ ! -s /etc/munge/munge.key ]]; then
    log "creating munge key"
    if command -v mungekey >/dev/null; then
        mungekey --create --force --keyfile=/etc/munge/munge.key
    else
        dd if=/dev/urandom of=/etc/munge/munge.key bs=1 count=1024 status=none
    fi
    chown munge:munge /etc/munge/munge.key
    chmod 0400 /etc/munge/munge.key
fi
if ! pid_alive /run/munge/munged.pid munged; then
    log "starting munged"
    rm -f /run/munge/munged.pid
    runuser -u munge -- /usr/sbin/munged
fi
wait_for munged munge_ok

# ---------------------------------------------------------------- mariadb
mariadb_changed=0
write_if_changed "$MARIADB_CNF" 0644 "$MARIADB_CNF_TEXT" && mariadb_changed=1
if pid_alive /run/mysqld/mysqld.pid mariadbd && (( mariadb_changed )); then
    log "restarting mariadb (config changed)"
    mysqladmin --protocol=socket -uroot shutdown || true
    wait_for "mariadb shutdown" bash -c '! pgrep -x mariadbd'
fi
if ! pid_alive /run/mysqld/mysqld.pid mariadbd; then
    log "starting mariadb"
    setsid /usr/bin/mysqld_safe >/dev/null 2>&1 </dev/null &
fi
wait_for mariadb db_ok
mysql --protocol=socket -uroot <<EOF
CREATE DATABASE IF NOT EXISTS ${DB_NAME};
CREATE USER IF NOT EXISTS '${DB_USER}'@'localhost' IDENTIFIED BY '${DB_PASS}';
ALTER USER '${DB_USER}'@'localhost' IDENTIFIED BY '${DB_PASS}';
GRANT ALL ON ${DB_NAME}.* TO '${DB_USER}'@'localhost';
FLUSH PRIVILEGES;
EOF

# ---------------------------------------------------------------- slurm configs
dbd_changed=0
slurm_changed=0
write_if_changed "$CONF_DIR/slurmdbd.conf" 0600 "$SLURMDBD_CONF_TEXT" && dbd_changed=1
write_if_changed "$CONF_DIR/slurm.conf" 0644 "$SLURM_CONF_TEXT" && slurm_changed=1
write_if_changed "$CONF_DIR/gres.conf" 0644 "$GRES_CONF_TEXT" && slurm_changed=1

# ---------------------------------------------------------------- daemons
# stop_daemon <name>: SIGTERM via pidfile, wait for exit (used on config change).
stop_daemon() {
    local name=$1 pidfile=$RUN_DIR/$1.pid pid
    pid_alive "$pidfile" "$name" || return 0
    pid=$(<"$pidfile")
    log "restarting $name (config changed)"
    kill "$pid" 2>/dev/null || true
    wait_for "$name to stop" bash -c "! kill -0 $pid"
}
if (( dbd_changed )); then stop_daemon slurmdbd; fi
if (( slurm_changed )); then stop_daemon slurmd; stop_daemon slurmctld; fi

if ! pid_alive "$RUN_DIR/slurmdbd.pid" slurmdbd; then
    log "starting slurmdbd"
    rm -f "$RUN_DIR/slurmdbd.pid"
    slurmdbd
fi
wait_for slurmdbd dbd_ok

# Register cluster, account and user (sacctmgr -i add fails if they exist).
if ! sacctmgr -n -P list cluster format=cluster | grep -qx "$CLUSTER"; then
    log "registering cluster $CLUSTER"
    sacctmgr -i add cluster "$CLUSTER" >/dev/null
fi
if ! sacctmgr -n -P list account format=account | grep -qx root; then
    sacctmgr -i add account root cluster="$CLUSTER" >/dev/null
fi
if ! sacctmgr -n -P list assoc cluster="$CLUSTER" user=root format=account | grep -qx root; then
    log "adding user root to account root"
    sacctmgr -i add user root account=root cluster="$CLUSTER" >/dev/null
fi

if ! pid_alive "$RUN_DIR/slurmctld.pid" slurmctld; then
    log "starting slurmctld"
    rm -f "$RUN_DIR/slurmctld.pid"
    slurmctld
fi
wait_for slurmctld ctld_ok

if ! pid_alive "$RUN_DIR/slurmd.pid" slurmd; then
    log "starting slurmd"
    rm -f "$RUN_DIR/slurmd.pid"
    slurmd -N "$NODE"
fi

# Wait for the node to register; resume it if it comes up down/drained.
deadline=$((SECONDS + TIMEOUT))
until node_usable; do
    state=$(node_state || true)
    if [[ $state == inval* ]]; then
        scontrol show node "$NODE" >&2 || true
        die "node $NODE rejected its registration (config/hardware mismatch, see Reason above)"
    fi
    if [[ $state =~ ^(down|drain|drng|fail) ]]; then
        log "node state '$state', resuming"
        scontrol update NodeName="$NODE" State=RESUME >/dev/null 2>&1 || true
    fi
    if (( SECONDS >= deadline )); then
        scontrol show node "$NODE" >&2 || true
        die "node $NODE not idle after ${TIMEOUT}s (state: ${state:-?}); see ${LOG_DIR}"
    fi
    sleep 0.5
done
wait_for sacct sacct_ok

log "cluster '$CLUSTER' is up:"
sinfo
