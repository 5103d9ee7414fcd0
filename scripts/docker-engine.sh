#!/usr/bin/env bash
# Start or stop a Docker engine for the container tests and image builds.
#
#   scripts/docker-engine.sh start   # no-op when `docker info` already answers
#   scripts/docker-engine.sh stop    # stops only a dockerd that `start` launched
#
# Machines here (a developer's and CI's) have a docker client but no running engine, and no
# systemd to start one, so `start` installs Debian's docker.io when dockerd is missing and runs
# dockerd in the background itself. It records the pid it launched, so `stop` never touches an
# engine somebody else started. Both subcommands are safe to call twice.
set -euo pipefail

# Machine-wide, not per checkout: there is one engine per machine, and CI runs in another clone.
STATE_DIR=${SERVEML_DOCKERD_STATE:-/tmp/serveml-dockerd}
PID_FILE=$STATE_DIR/dockerd.pid
LOG_FILE=$STATE_DIR/dockerd.log
START_TIMEOUT_S=60
STOP_TIMEOUT_S=45
# debootstrap is for scripts/lambda-base-image.sh; the keyring lets it verify what it downloads.
PACKAGES=(docker.io debootstrap debian-archive-keyring)

log() {
    echo "docker-engine: $*" >&2
}

die() {
    log "ERROR: $*"
    exit 1
}

engine_answers() {
    # A timeout, because a half-started daemon can leave the client waiting on the socket.
    timeout 10 docker info >/dev/null 2>&1
}

# The pid from our pid file, if that process is still a dockerd (a recycled pid is not ours).
our_dockerd_pid() {
    local pid
    [[ -f $PID_FILE ]] || return 1
    pid=$(<"$PID_FILE")
    [[ $pid =~ ^[0-9]+$ ]] || return 1
    [[ -r /proc/$pid/comm && $(<"/proc/$pid/comm") == dockerd ]] || return 1
    echo "$pid"
}

missing_packages() {
    local missing=()
    command -v dockerd >/dev/null 2>&1 || missing+=(docker.io)
    command -v docker >/dev/null 2>&1 || missing+=(docker.io)
    command -v debootstrap >/dev/null 2>&1 || missing+=(debootstrap)
    [[ -f /usr/share/keyrings/debian-archive-keyring.gpg ]] || missing+=(debian-archive-keyring)
    if ((${#missing[@]})); then
        printf '%s\n' "${missing[@]}" | sort -u
    fi
}

install_packages() {
    local missing
    missing=$(missing_packages)
    if [[ -z $missing ]]; then
        log "dockerd, debootstrap and the Debian keyring are installed already"
        return
    fi
    [[ $(id -u) -eq 0 ]] || die "need root to apt-get install: $(echo "$missing" | tr '\n' ' ')"
    command -v apt-get >/dev/null 2>&1 || die "no apt-get on this machine; install docker.io by hand"
    log "installing ${PACKAGES[*]} with apt-get (missing: $(echo "$missing" | tr '\n' ' '))"
    local began=$SECONDS
    # No init system runs here; a policy-rc.d that says "no" keeps the packages' maintainer
    # scripts from starting docker or containerd on their own, so the only engine is the one
    # launched below (and recorded). An existing policy-rc.d is left as it is.
    local policy=/usr/sbin/policy-rc.d own_policy=0
    if [[ ! -e $policy ]]; then
        printf '#!/bin/sh\nexit 101\n' >"$policy"
        chmod 0755 "$policy"
        own_policy=1
    fi
    local status=0
    {
        DEBIAN_FRONTEND=noninteractive apt-get update -q &&
            # Recommends (apparmor, git, needrestart, ...) are not needed for dockerd to run;
            # Depends brings containerd, runc, iptables and tini.
            DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${PACKAGES[@]}"
    } >&2 || status=$?
    if ((own_policy)); then
        rm -f "$policy"
    fi
    ((status == 0)) || die "apt-get failed with exit code $status"
    log "installed in $((SECONDS - began)) s"
}

# Launch dockerd with the given extra flags; wait until `docker info` answers. Returns 1 if
# dockerd exits or does not answer within START_TIMEOUT_S (and then it is not left running).
launch() {
    local pid began=$SECONDS
    log "starting dockerd${*:+ $*} (log: $LOG_FILE)"
    echo "=== $(date -u +%FT%TZ) scripts/docker-engine.sh: dockerd $*" >>"$LOG_FILE"
    # setsid: its own session, so a Ctrl-C or the end of the calling shell's process group does
    # not take the engine down with it; it is meant to outlive this script.
    setsid dockerd "$@" </dev/null >>"$LOG_FILE" 2>&1 &
    pid=$!
    echo "$pid" >"$PID_FILE"
    while ((SECONDS - began < START_TIMEOUT_S)); do
        if engine_answers; then
            log "dockerd (pid $pid) answers after $((SECONDS - began)) s"
            return 0
        fi
        if ! kill -0 "$pid" 2>/dev/null; then
            wait "$pid" 2>/dev/null || true
            rm -f "$PID_FILE"
            log "dockerd exited during start-up; last lines of $LOG_FILE:"
            tail -n 15 "$LOG_FILE" >&2 || true
            return 1
        fi
        sleep 1
    done
    log "dockerd (pid $pid) did not answer in $START_TIMEOUT_S s; stopping it"
    stop_pid "$pid"
    rm -f "$PID_FILE"
    return 1
}

stop_pid() {
    local pid=$1 began=$SECONDS
    kill -TERM "$pid" 2>/dev/null || return 0
    # dockerd gives running containers 15 s to stop, then shuts containerd down.
    while kill -0 "$pid" 2>/dev/null; do
        if ((SECONDS - began >= STOP_TIMEOUT_S)); then
            log "dockerd (pid $pid) still running after $STOP_TIMEOUT_S s; sending SIGKILL"
            kill -KILL "$pid" 2>/dev/null || true
            sleep 1
            break
        fi
        sleep 0.5
    done
}

start() {
    if engine_answers; then
        log "a Docker engine already answers; nothing to do ($(docker_version))"
        return
    fi
    mkdir -p "$STATE_DIR"
    local pid
    if pid=$(our_dockerd_pid); then
        # Started by an earlier call that has not finished coming up (or hung): give it the same
        # time a fresh start gets before judging it.
        log "dockerd (pid $pid) started earlier by this script is running; waiting for it"
        local began=$SECONDS
        while ((SECONDS - began < START_TIMEOUT_S)); do
            if engine_answers; then
                log "it answers ($(docker_version))"
                return
            fi
            sleep 1
        done
        log "it does not answer; restarting it"
        stop_pid "$pid"
        rm -f "$PID_FILE"
    fi
    install_packages
    command -v dockerd >/dev/null 2>&1 || die "dockerd is still not on PATH after the install"
    if launch; then
        log "started the engine ($(docker_version))"
        return
    fi
    # The usual failure in a VM or container is iptables/nftables (no kernel support, or no
    # permission). Every container we run uses --network host, so the engine needs neither
    # iptables rules nor the docker0 bridge.
    log "retrying without iptables and without the docker0 bridge (--iptables=false --bridge=none):"
    log "  only --network host works on this engine"
    if launch --iptables=false --bridge=none; then
        log "started the engine without iptables/bridge ($(docker_version))"
        return
    fi
    die "dockerd would not start; see $LOG_FILE"
}

stop() {
    local pid
    if ! pid=$(our_dockerd_pid); then
        rm -f "$PID_FILE"
        if engine_answers; then
            log "the running engine was not started by this script; leaving it alone"
        else
            log "no dockerd started by this script is running; nothing to do"
        fi
        return
    fi
    log "stopping dockerd (pid $pid)"
    stop_pid "$pid"
    rm -f "$PID_FILE"
    log "stopped"
}

docker_version() {
    timeout 10 docker version --format 'client {{.Client.Version}}, server {{.Server.Version}}' 2>/dev/null ||
        echo "version unknown"
}

case ${1:-} in
    start) start ;;
    stop) stop ;;
    *)
        echo "usage: $0 start|stop" >&2
        exit 2
        ;;
esac
