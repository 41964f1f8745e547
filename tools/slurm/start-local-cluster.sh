#!/usr/bin/env bash
# A real one-node Slurm cluster on this machine, from Debian's packages, for the integration test
# (tests/test_slurm.py) and for trying `snakemake --profile profiles/slurm` without a cluster.
#
#   tools/slurm/start-local-cluster.sh     # as root; idempotent: running daemons are kept, the config re-read
#   tools/slurm/stop-local-cluster.sh      # stops what this script started
#
# What it runs: munged (authentication), MariaDB + slurmdbd (job accounting: the executor plugin
# asks `sacct` for its jobs' states), slurmctld and slurmd, all started directly (containers
# often have no systemd), all as root except munged and MariaDB, on one node named after this
# machine (`hostname -s`, at 127.0.0.1) with its real CPU count and memory (`slurmd -C`), in one
# partition, PARTITION below, with an account, ACCOUNT below, that root may use. No GPU is
# configured: this machine has none. Configuration goes to /etc/slurm (Debian's default, so
# sinfo, sbatch and sacct find it without SLURM_CONF); the script refuses to overwrite a
# slurm.conf it did not write. State, logs and pid files: /var/lib/lenet-slurm,
# /var/log/lenet-slurm, /run/lenet-slurm.
set -euo pipefail

CLUSTER=lenet
PARTITION=${LENET_SLURM_PARTITION:-debug}
ACCOUNT=${LENET_SLURM_ACCOUNT:-lenet}
MARKER="# written by tools/slurm/start-local-cluster.sh"
CONF_DIR=/etc/slurm
STATE=/var/lib/lenet-slurm
LOGS=/var/log/lenet-slurm
RUN=/run/lenet-slurm
DB_SOCKET=/run/mysqld/mysqld.sock
PACKAGES=(munge slurmctld slurmd slurm-client slurmdbd mariadb-server)

say() { echo "start-local-cluster: $*"; }
die() { echo "start-local-cluster: error: $*" >&2; exit 1; }

# Whether the process of pid file $1 runs. A zombie does not count: in a container, PID 1 may
# never reap a killed daemon, and kill -0 still succeeds on it.
alive() {
    [[ -s "$1" ]] || return 1
    local pid state
    pid=$(cat "$1")
    state=$(sed -E 's/^.*\) (.).*$/\1/' "/proc/$pid/stat" 2>/dev/null) || return 1
    [[ -n $state && $state != Z ]]
}

wait_for() { # wait_for SECONDS WHAT COMMAND...: poll COMMAND every second until it succeeds
    local seconds=$1 what=$2
    shift 2
    for ((i = 0; i < seconds; i++)); do
        if "$@" >/dev/null 2>&1; then return 0; fi
        sleep 1
    done
    die "$what did not come up within ${seconds}s (logs: $LOGS)"
}

node=$(hostname -s)
node_idle() { [[ $(sinfo -h -n "$node" -p "$PARTITION" -o %t 2>/dev/null) =~ ^(idle|mix|alloc) ]]; }

# Without root nothing can be started, but a cluster that already runs can be used.
if [[ $(id -u) -ne 0 ]] && command -v sinfo >/dev/null && node_idle; then
    say "already running: partition $PARTITION, node $node"
    exit 0
fi

# --- packages ---
missing=()
for pkg in "${PACKAGES[@]}"; do
    dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
done
if ((${#missing[@]})); then
    [[ $(id -u) -eq 0 ]] || die "missing Debian packages: ${missing[*]}; run: sudo apt-get install ${missing[*]}"
    say "installing ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -q >/dev/null
    apt-get install -y -q --no-install-recommends "${missing[@]}" >/dev/null
fi
[[ $(id -u) -eq 0 ]] || die "run as root: it starts system daemons"

mkdir -p "$STATE/ctld" "$STATE/d" "$LOGS" "$RUN" "$CONF_DIR"

# --- configuration (rewritten each time: the machine's CPUs or memory may have changed) ---
if [[ -e $CONF_DIR/slurm.conf ]] && ! grep -qxF "$MARKER" "$CONF_DIR/slurm.conf"; then
    die "$CONF_DIR/slurm.conf exists and was not written by this script; not touching it"
fi
# e.g. "NodeName=vm CPUs=2 Boards=1 SocketsPerBoard=1 CoresPerSocket=2 ThreadsPerCore=1 RealMemory=24105"
hardware=$(slurmd -C | head -n 1 | sed -E 's/^NodeName=[^ ]+ //')
[[ $hardware == *CPUs=* && $hardware == *RealMemory=* ]] || die "unexpected output of slurmd -C: $hardware"
conf=$(
    cat <<EOF
$MARKER
# One node, one partition, job accounting in slurmdbd. See tools/slurm/start-local-cluster.sh.
ClusterName=$CLUSTER
SlurmctldHost=$node(127.0.0.1)
AuthType=auth/munge
SlurmUser=root
SlurmdUser=root
StateSaveLocation=$STATE/ctld
SlurmdSpoolDir=$STATE/d
SlurmctldPidFile=$RUN/slurmctld.pid
SlurmdPidFile=$RUN/slurmd.pid
SlurmctldLogFile=$LOGS/slurmctld.log
SlurmdLogFile=$LOGS/slurmd.log
# No cgroups: containers rarely allow them. Processes are tracked through /proc.
ProctrackType=proctrack/linuxproc
TaskPlugin=task/affinity
MpiDefault=none
SchedulerType=sched/backfill
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
ReturnToService=2
# Finished jobs stay visible to squeue for 5 minutes; sacct keeps them for good.
MinJobAge=300
JobAcctGatherType=jobacct_gather/linux
JobAcctGatherFrequency=10
AccountingStorageType=accounting_storage/slurmdbd
AccountingStorageHost=localhost
AccountingStorageEnforce=associations
JobCompType=jobcomp/none
# sacct shows the comment the executor plugin gives each job (rule and wildcards).
AccountingStoreFlags=job_comment
NodeName=$node NodeAddr=127.0.0.1 $hardware State=UNKNOWN
PartitionName=$PARTITION Nodes=$node Default=YES MaxTime=INFINITE State=UP
EOF
)
echo "$conf" >"$CONF_DIR/slurm.conf"
db_password=lenet-slurm-local
umask 077
cat >"$CONF_DIR/slurmdbd.conf" <<EOF
$MARKER
AuthType=auth/munge
DbdHost=localhost
SlurmUser=root
PidFile=$RUN/slurmdbd.pid
LogFile=$LOGS/slurmdbd.log
StorageType=accounting_storage/mysql
StorageHost=localhost
StorageLoc=slurm_acct_db
StorageUser=slurm
StoragePass=$db_password
EOF
umask 022

# --- munged ---
if ! alive /run/munge/munged.pid; then
    say "starting munged"
    [[ -s /etc/munge/munge.key ]] || runuser -u munge -- mungekey --create
    install -d -o munge -g munge -m 0755 /run/munge
    runuser -u munge -- /usr/sbin/munged --pid-file=/run/munge/munged.pid
fi
wait_for 15 munged bash -c 'munge -n | unmunge'

# --- MariaDB, the accounting database ---
if ! mariadb-admin --socket="$DB_SOCKET" ping >/dev/null 2>&1; then
    say "starting MariaDB"
    install -d -o mysql -g mysql /run/mysqld
    # Only the local socket: nothing listens on the network.
    # It logs to stderr; its pid file lives where the mysql user may write.
    setsid /usr/sbin/mariadbd --user=mysql --skip-networking --socket="$DB_SOCKET" \
        --pid-file=/run/mysqld/lenet-slurm.pid </dev/null >>"$LOGS/mariadb.log" 2>&1 &
fi
wait_for 60 MariaDB mariadb-admin --socket="$DB_SOCKET" ping
mariadb --socket="$DB_SOCKET" <<EOF
CREATE DATABASE IF NOT EXISTS slurm_acct_db;
CREATE USER IF NOT EXISTS 'slurm'@'localhost' IDENTIFIED BY '$db_password';
GRANT ALL ON slurm_acct_db.* TO 'slurm'@'localhost';
EOF

# --- slurmdbd ---
if ! alive "$RUN/slurmdbd.pid"; then
    say "starting slurmdbd"
    /usr/sbin/slurmdbd
fi
wait_for 60 slurmdbd sacctmgr -n list cluster
if [[ -z $(sacctmgr -n -P list cluster "$CLUSTER" format=cluster) ]]; then
    sacctmgr -i add cluster "$CLUSTER" >/dev/null
fi
# The account jobs are charged to (AccountingStorageEnforce=associations needs one).
if [[ -z $(sacctmgr -n -P list account "$ACCOUNT" format=account) ]]; then
    sacctmgr -i add account "$ACCOUNT" cluster="$CLUSTER" description="lenet-compare tests" >/dev/null
fi
if [[ -z $(sacctmgr -n -P list association user=root account="$ACCOUNT" format=account) ]]; then
    sacctmgr -i add user root account="$ACCOUNT" cluster="$CLUSTER" >/dev/null
fi

# --- slurmctld and slurmd ---
if alive "$RUN/slurmctld.pid"; then
    scontrol reconfigure >/dev/null
else
    say "starting slurmctld"
    /usr/sbin/slurmctld
fi
wait_for 30 slurmctld scontrol ping
if ! alive "$RUN/slurmd.pid"; then
    say "starting slurmd"
    /usr/sbin/slurmd
fi

for ((i = 0; i < 60; i++)); do
    node_idle && break
    # A node left DOWN by an unclean stop comes back once told to.
    [[ $(sinfo -h -n "$node" -o %t) =~ ^(down|drain) ]] && scontrol update nodename="$node" state=resume >/dev/null 2>&1 || true
    sleep 1
done
node_idle || die "node $node is not idle: $(sinfo -h -n "$node" -o '%t %E'); see $LOGS"
say "ready: partition $PARTITION, account $ACCOUNT, node $node ($hardware)"
sinfo
