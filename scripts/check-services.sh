#!/usr/bin/env bash
# Checks that the services the integration tests talk to answer, starts stopped local ones, and
# fails naming each service still missing. Each address comes from the same environment variable
# the tests read, with the same default:
#
#   PIPECTL_TEST_POSTGRES_URL  postgres://postgres@127.0.0.1:5432/test
#   PIPECTL_TEST_MYSQL_URL     mysql://root@127.0.0.1:3306/test
#   PIPECTL_TEST_NATS_URL      nats://127.0.0.1:4222
#   PIPECTL_TEST_MQTT_URL      mqtt://127.0.0.1:1883
#
# PIPECTL_SERVICE_WAIT_SECS (default 30) bounds the wait after starting services.
# Exit 0 when all answer, 1 when one is still missing.
# The single-quoted snippets below are run by a child bash or printed as hints: no expansion here.
# shellcheck disable=SC2016
set -euo pipefail

readonly POSTGRES_URL="${PIPECTL_TEST_POSTGRES_URL:-postgres://postgres@127.0.0.1:5432/test}"
readonly MYSQL_URL="${PIPECTL_TEST_MYSQL_URL:-mysql://root@127.0.0.1:3306/test}"
readonly NATS_URL="${PIPECTL_TEST_NATS_URL:-nats://127.0.0.1:4222}"
readonly MQTT_URL="${PIPECTL_TEST_MQTT_URL:-mqtt://127.0.0.1:1883}"
readonly WAIT_SECS="${PIPECTL_SERVICE_WAIT_SECS:-30}"
# A single probe must never hang the script, e.g. on a firewalled remote host.
readonly PROBE_TIMEOUT_SECS=5

# shellcheck source=scripts/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh" check-services

# Splits a URL into "user host port" (user may be empty). Handles userinfo, [IPv6] hosts, paths
# and query strings; the port falls back to the given default.
parse_url() {
    local url="$1" default_port="$2" rest user="" host port
    rest="${url#*://}"
    rest="${rest%%/*}"
    rest="${rest%%\?*}"
    if [[ "$rest" == *@* ]]; then
        user="${rest%@*}"
        user="${user%%:*}"
        rest="${rest##*@}"
    fi
    if [[ "$rest" == \[* ]]; then
        host="${rest#[}"
        host="${host%%]*}"
        port="${rest##*]}"
        port="${port#:}"
    elif [[ "$rest" == *:* ]]; then
        host="${rest%%:*}"
        port="${rest#*:}"
    else
        host="$rest"
        port=""
    fi
    printf '%s %s %s\n' "${user:--}" "${host:-127.0.0.1}" "${port:-$default_port}"
}

is_loopback() {
    case "$1" in
        localhost | 127.* | ::1) return 0 ;;
        *) return 1 ;;
    esac
}

tcp_answers() {
    timeout "$PROBE_TIMEOUT_SECS" bash -c 'exec 3<>"/dev/tcp/$0/$1"' "$1" "$2" 2>/dev/null
}

probe_postgres() {
    local user="$1" host="$2" port="$3"
    if command -v pg_isready >/dev/null 2>&1; then
        # pg_isready also tells "starting up" (exit 1) from "accepting connections" (exit 0).
        pg_isready -q -h "$host" -p "$port" -t "$PROBE_TIMEOUT_SECS" >/dev/null 2>&1
    else
        tcp_answers "$host" "$port"
    fi
}

probe_mysql() {
    local user="$1" host="$2" port="$3" admin=""
    if command -v mariadb-admin >/dev/null 2>&1; then
        admin=mariadb-admin
    elif command -v mysqladmin >/dev/null 2>&1; then
        admin=mysqladmin
    fi
    if [[ -n "$admin" ]]; then
        # ping exits 0 whenever the server runs, even if these credentials are refused.
        [[ "$user" == "-" ]] && user=root
        timeout "$PROBE_TIMEOUT_SECS" "$admin" --no-defaults --protocol=tcp -h "$host" -P "$port" \
            -u "$user" --connect-timeout="$PROBE_TIMEOUT_SECS" ping >/dev/null 2>&1
    else
        tcp_answers "$host" "$port"
    fi
}

# A NATS server greets every client with an INFO line; anything else on the port is not NATS.
probe_nats() {
    local host="$2" port="$3" greeting
    greeting="$(timeout "$PROBE_TIMEOUT_SECS" bash -c \
        'exec 3<>"/dev/tcp/$0/$1" && read -r -t "$2" line <&3 && printf "%s" "$line"' \
        "$host" "$port" "$PROBE_TIMEOUT_SECS" 2>/dev/null)" || return 1
    [[ "$greeting" == INFO* ]] || return 1
    if [[ "$greeting" != *'"jetstream":true'* ]]; then
        log "warning: NATS on ${host}:${port} answers but JetStream is off (start nats-server with -js)"
    fi
}

# An MQTT 3.1.1 CONNECT (clean session, empty client id) must be answered by a CONNACK (0x20),
# whatever its return code: that proves a broker, not just an open port.
probe_mqtt() {
    local host="$2" port="$3" reply
    reply="$(timeout "$PROBE_TIMEOUT_SECS" bash -c \
        'exec 3<>"/dev/tcp/$0/$1" &&
         printf "\x10\x0c\x00\x04MQTT\x04\x02\x00\x3c\x00\x00" >&3 &&
         head -c 2 <&3 | od -An -tx1' "$host" "$port" 2>/dev/null)" || return 1
    [[ "$reply" == *20* ]]
}

start_postgres() {
    command -v pg_ctlcluster >/dev/null 2>&1 || return 1
    [[ -d /etc/postgresql ]] || return 1
    local version
    for version in /etc/postgresql/*/; do
        version="$(basename "$version")"
        log "starting PostgreSQL ${version}: pg_ctlcluster --skip-systemctl-redirect ${version} main start"
        pg_ctlcluster --skip-systemctl-redirect "$version" main start >&2 || true
    done
}

start_mysql() {
    [[ -x /usr/sbin/mariadbd ]] || return 1
    log "starting MariaDB: start-stop-daemon --start --oknodo --background --exec /usr/sbin/mariadbd"
    start-stop-daemon --start --oknodo --background --exec /usr/sbin/mariadbd >&2 || true
}

start_nats() {
    local host="$2" port="$3"
    [[ -x /usr/sbin/nats-server ]] || return 1
    log "starting NATS with JetStream on ${host}:${port}"
    mkdir -p /var/lib/nats-server 2>/dev/null || true
    start-stop-daemon --start --oknodo --background --exec /usr/sbin/nats-server -- \
        -a "$host" -p "$port" -js -sd /var/lib/nats-server -l /var/log/nats-server.log >&2 || true
}

start_mqtt() {
    command -v mosquitto >/dev/null 2>&1 || return 1
    log "starting Mosquitto: mosquitto -d -c /etc/mosquitto/mosquitto.conf"
    mosquitto -d -c /etc/mosquitto/mosquitto.conf >&2 || true
}

# Printed when a service stays missing, so the reader knows what to run.
start_hint() {
    local host="$3" port="$4"
    case "$1" in
        postgres) echo 'pg_ctlcluster --skip-systemctl-redirect $(ls /etc/postgresql) main start' ;;
        mysql) echo 'start-stop-daemon --start --oknodo --background --exec /usr/sbin/mariadbd' ;;
        nats) echo "start-stop-daemon --start --oknodo --background --exec /usr/sbin/nats-server -- -a ${host} -p ${port} -js -sd /var/lib/nats-server -l /var/log/nats-server.log" ;;
        mqtt) echo 'mosquitto -d -c /etc/mosquitto/mosquitto.conf' ;;
    esac
}

declare -A TITLE=([postgres]=PostgreSQL [mysql]=MariaDB [nats]=NATS [mqtt]="MQTT (Mosquitto)")
declare -A VAR=([postgres]=PIPECTL_TEST_POSTGRES_URL [mysql]=PIPECTL_TEST_MYSQL_URL
    [nats]=PIPECTL_TEST_NATS_URL [mqtt]=PIPECTL_TEST_MQTT_URL)
declare -A ADDR
read -r -a parts <<<"$(parse_url "$POSTGRES_URL" 5432)" && ADDR[postgres]="${parts[*]}"
read -r -a parts <<<"$(parse_url "$MYSQL_URL" 3306)" && ADDR[mysql]="${parts[*]}"
read -r -a parts <<<"$(parse_url "$NATS_URL" 4222)" && ADDR[nats]="${parts[*]}"
read -r -a parts <<<"$(parse_url "$MQTT_URL" 1883)" && ADDR[mqtt]="${parts[*]}"
readonly SERVICES=(postgres mysql nats mqtt)

endpoint() {
    local user host port
    read -r user host port <<<"${ADDR[$1]}"
    printf '%s:%s' "$host" "$port"
}

probe() {
    local user host port
    read -r user host port <<<"${ADDR[$1]}"
    "probe_$1" "$user" "$host" "$port"
}

# Probes each SERVICE, logging those that answer (the line ending in SUFFIX), and sets `missing`
# to the others.
probe_all() { # suffix service...
    local suffix="$1" service
    shift
    missing=()
    for service in "$@"; do
        if probe "$service"; then
            log "ok       ${TITLE[$service]} on $(endpoint "$service")${suffix}"
        else
            missing+=("$service")
        fi
    done
}

probe_all "" "${SERVICES[@]}"
if ((${#missing[@]} == 0)); then
    exit 0
fi

for service in "${missing[@]}"; do
    read -r user host port <<<"${ADDR[$service]}"
    if ! is_loopback "$host"; then
        log "${TITLE[$service]} on ${host}:${port} is not local; not starting it"
    elif ! "start_$service" "$user" "$host" "$port"; then
        log "${TITLE[$service]} on ${host}:${port} is down and is not installed here"
    fi
done

deadline=$((SECONDS + WAIT_SECS))
while ((${#missing[@]} > 0)) && ((SECONDS < deadline)); do
    probe_all " (started)" "${missing[@]}"
    ((${#missing[@]} == 0)) || sleep 1
done

if ((${#missing[@]} > 0)); then
    for service in "${missing[@]}"; do
        read -r user host port <<<"${ADDR[$service]}"
        if tcp_answers "$host" "$port"; then
            # An open port that fails the protocol check usually means a wrong port in the URL.
            log "error: something listens on ${host}:${port} but it is not ${TITLE[$service]}" \
                "(address from ${VAR[$service]}); check the port"
        else
            log "error: ${TITLE[$service]} is not answering on ${host}:${port} after ${WAIT_SECS} s" \
                "(address from ${VAR[$service]}). Start it with: $(start_hint "$service" "$user" "$host" "$port")"
        fi
    done
    exit 1
fi
