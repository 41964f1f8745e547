#!/usr/bin/env bash
# Stops the one-node Slurm cluster of tools/slurm/start-local-cluster.sh: its jobs, slurmd,
# slurmctld, slurmdbd, MariaDB and munged, each by the pid file it was started with. The
# configuration, the accounting database and the job history stay (a later start reuses them).
set -uo pipefail

RUN=/run/lenet-slurm

say() { echo "stop-local-cluster: $*"; }

# Whether process $1 runs; a zombie (a container's PID 1 may never reap it) does not count.
running() {
    local state
    state=$(sed -E 's/^.*\) (.).*$/\1/' "/proc/$1/stat" 2>/dev/null) || return 1
    [[ -n $state && $state != Z ]]
}

stop() { # stop NAME PIDFILE: SIGTERM, then wait up to 30 s for the process to go
    local name=$1 pidfile=$2 pid
    [[ -s $pidfile ]] || return 0
    pid=$(cat "$pidfile")
    running "$pid" || return 0
    say "stopping $name ($pid)"
    kill "$pid"
    for ((i = 0; i < 30; i++)); do
        running "$pid" || return 0
        sleep 1
    done
    say "$name ($pid) still running after 30 s"
    return 1
}

if [[ -s $RUN/slurmctld.pid ]] && running "$(cat "$RUN/slurmctld.pid")"; then
    scancel --user=root 2>/dev/null || true
fi
status=0
stop slurmd "$RUN/slurmd.pid" || status=1
stop slurmctld "$RUN/slurmctld.pid" || status=1
stop slurmdbd "$RUN/slurmdbd.pid" || status=1
stop MariaDB /run/mysqld/lenet-slurm.pid || status=1
stop munged /run/munge/munged.pid || status=1
exit $status
