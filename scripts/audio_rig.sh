#!/usr/bin/env bash
# A real audio rig for tests and demos, with no sound card: a private sound server
# with two null sinks.
#
#   vt_mic      we play speech into it; its monitor "vt_mic.monitor" is the microphone
#   vt_speaker  the app plays into it; record "vt_speaker.monitor" to hear the app
#   (echo)      optional module-loopback vt_speaker.monitor -> vt_mic at a set gain,
#               i.e. the microphone hears the speaker, as on a laptop
#
# Profiles (--profile, or VT_RIG_PROFILE; the default is lab):
#   lab            PulseAudio without default.pa (-n), both sinks kept running by a
#                  silent loopback, real-time priority: steady timing for benchmarks
#   pulse-desktop  PulseAudio as Debian ships it: the stock /etc/pulse/default.pa
#                  (module-suspend-on-idle suspends an idle sink after 5 s), no
#                  keep-alive, no real-time priority
#   pipewire       PipeWire with wireplumber and pipewire-pulse (which also suspends
#                  idle nodes), on a private D-Bus session bus, sinks made with pactl
#
# Usage:
#   scripts/audio_rig.sh start [--profile P] [--echo-gain DB]   start the rig; prints env
#   scripts/audio_rig.sh echo DB|off              change or remove the echo loopback
#   scripts/audio_rig.sh env                      print the env vars (rig must be running)
#   scripts/audio_rig.sh status                   say whether it runs, list sinks and loopback
#   scripts/audio_rig.sh profile                  print the running rig's profile
#   scripts/audio_rig.sh stop                     tear everything down
#
# `eval "$(scripts/audio_rig.sh start)"` sets PULSE_SERVER, PULSE_SINK and PULSE_SOURCE
# in the calling shell, so PortAudio (through ALSA's "pulse" plugin, Debian's
# libasound2-plugins) captures vt_mic.monitor and plays into vt_speaker.
#
# Why it looks like this: we run as root, where `pulseaudio --start` is refused and a
# per-user runtime dir may not exist. A user-mode daemon (--system=false) with its own
# runtime dir and HOME works as root and needs no login session. Everything it owns
# lives in $VT_RIG_DIR. The lab daemon starts with -n (no default.pa) and anonymous
# auth, so it never touches real hardware; --realtime/--high-priority: as root
# PulseAudio gives its sink threads SCHED_RR and itself nice -11, so the rig keeps
# time while the app under test loads both cores (without, a starved daemon delivered
# capture audio late and in lumps). The desktop profiles have none of that, on
# purpose: that is what people run, and what voiceterm must play through.
# Every command is idempotent and non-interactive (CI runs it from scratch).

set -euo pipefail

RIG_DIR="${VT_RIG_DIR:-/tmp/voiceterm-rig-$(id -u)}"
RUNTIME="$RIG_DIR/pulse"
SOCKET="$RUNTIME/native"
PIDFILE="$RUNTIME/pid"
PIDS_FILE="$RIG_DIR/pids"            # pipewire: every daemon the rig started
PROFILE_FILE="$RIG_DIR/profile"
LOG="$RIG_DIR/pulseaudio.log"
RATE="${VT_RIG_RATE:-48000}"          # a typical device rate, so 16 kHz needs resampling
LOOPBACK_LATENCY_MS="${VT_RIG_LOOPBACK_MS:-30}"   # the echo path's delay
KEEPALIVE_LATENCY_MS=30

export PULSE_SERVER="unix:$SOCKET"
# Keep client libraries away from the caller's own PulseAudio files.
export PULSE_RUNTIME_PATH="$RUNTIME"

log() { printf 'audio_rig: %s\n' "$*" >&2; }
die() { log "error: $*"; exit 1; }

need() {
    command -v "$1" >/dev/null 2>&1 \
        || die "$1 not found (apt-get install -y pulseaudio pulseaudio-utils libasound2-plugins)"
}

is_running() {
    [[ -S "$SOCKET" ]] && pactl info >/dev/null 2>&1
}

daemon_pid() {
    [[ -f "$PIDFILE" ]] && tr -d ' \n' <"$PIDFILE"
}

running_profile() {
    if [[ -f "$PROFILE_FILE" ]]; then cat "$PROFILE_FILE"; else echo lab; fi
}

print_env() {
    printf 'export PULSE_SERVER=%q\n' "unix:$SOCKET"
    printf 'export PULSE_SINK=vt_speaker\n'
    printf 'export PULSE_SOURCE=vt_mic.monitor\n'
}

ensure_sink() {  # name description
    if ! pactl list short sinks | awk '{print $2}' | grep -qx "$1"; then
        pactl load-module module-null-sink sink_name="$1" rate="$RATE" channels=1 \
            format=s16le sink_properties="device.description=$2" >/dev/null
    fi
}

# A null sink left alone runs at its maximum latency (2 s): it renders in 2-second
# bursts, so its monitor delivers audio in bursts and capture timestamps are
# meaningless. A silent loopback into each sink asks for a low latency and keeps
# both sinks rendering in small blocks, like a sound card.
ensure_keepalive() {
    if ! pactl list short sources | awk '{print $2}' | grep -qx vt_silence; then
        pactl load-module module-null-source source_name=vt_silence rate="$RATE" channels=1 \
            >/dev/null
    fi
    local sink
    for sink in vt_mic vt_speaker; do
        if ! pactl list short modules \
            | grep -q "module-loopback.*source=vt_silence sink=$sink "; then
            pactl load-module module-loopback source=vt_silence sink="$sink" \
                latency_msec="$KEEPALIVE_LATENCY_MS" source_dont_move=true sink_dont_move=true \
                sink_input_properties=media.name=vt_keepalive >/dev/null
        fi
    done
}

# Right after start a null sink has rendered up to 2 s ahead; wait (at most 5 s)
# until both sinks are within 100 ms of real time, or the first stream's timing lies.
wait_until_settled() {
    local worst
    for _ in $(seq 100); do
        worst=$(pactl list sinks | awk '/^[ \t]*Latency:/ {print $2}' | sort -n | tail -1)
        [[ -n "$worst" && "$worst" -lt 100000 ]] && return
        sleep 0.05
    done
    log "warning: sinks still ${worst:-?} us ahead after 5 s"
}

loopback_modules() {
    pactl list short modules | awk '$2 == "module-loopback" && /source=vt_speaker.monitor/ {print $1}'
}

sink_input_of_module() {  # module id -> sink input index
    pactl list sink-inputs | awk -v m="$1" '
        /^Sink Input #/ { idx = substr($3, 2) }
        /^[ \t]*Owner Module:/ && $3 == m { print idx; exit }'
}

# Linear amplitude factor for a gain in dB; pactl mis-parses negative "dB" values.
db_to_factor() {
    awk -v db="$1" 'BEGIN { printf "%.6f", 10 ^ (db / 20) }'
}

set_echo() {  # DB | off
    local mod
    for mod in $(loopback_modules); do
        pactl unload-module "$mod"
    done
    [[ "$1" == "off" ]] && { log "echo loopback off"; return; }
    [[ "$1" =~ ^-?[0-9]+([.][0-9]+)?$ ]] || die "echo gain must be a number of dB or 'off', not '$1'"
    # adjust_time=0: both sinks run on the same clock, so the loopback needs no rate
    # control; with it, the echo delay drifts for ~20 s after loading, which no echo
    # canceller follows (measured: ERLE 10 dB instead of 70 dB until it settles).
    local module_id factor input
    module_id=$(pactl load-module module-loopback source=vt_speaker.monitor sink=vt_mic \
        latency_msec="$LOOPBACK_LATENCY_MS" adjust_time=0 source_dont_move=true sink_dont_move=true \
        sink_input_properties=media.name=vt_echo)
    factor=$(db_to_factor "$1")
    # The loopback's sink input may take a moment to appear.
    for _ in $(seq 50); do
        input=$(sink_input_of_module "$module_id")
        [[ -n "$input" ]] && break
        sleep 0.05
    done
    [[ -n "$input" ]] || die "loopback module $module_id has no sink input"
    pactl set-sink-input-volume "$input" "$factor"
    log "echo loopback vt_speaker.monitor -> vt_mic at $1 dB (module $module_id)"
}

start_lab() {
    # HOME/XDG_* point into the rig so the daemon reads and writes nothing of the user's.
    HOME="$RIG_DIR/home" XDG_RUNTIME_DIR="$RIG_DIR" XDG_CONFIG_HOME="$RIG_DIR/home/.config" \
        pulseaudio -n --daemonize=yes --system=false --exit-idle-time=-1 \
        --use-pid-file=yes --realtime=yes --high-priority=yes --log-level=notice \
        --log-target="file:$LOG" \
        -L "module-native-protocol-unix socket=$SOCKET auth-anonymous=1" \
        || die "pulseaudio did not start; see $LOG"
}

start_pulse_desktop() {
    # Debian's own default.pa, as a desktop session loads it: its native protocol
    # module makes the socket in $XDG_RUNTIME_DIR/pulse, which is $RUNTIME here.
    HOME="$RIG_DIR/home" XDG_RUNTIME_DIR="$RIG_DIR" XDG_CONFIG_HOME="$RIG_DIR/home/.config" \
        pulseaudio --daemonize=yes --system=false --exit-idle-time=-1 \
        --use-pid-file=yes --realtime=no --high-priority=no --log-level=notice \
        --log-target="file:$LOG" \
        || die "pulseaudio (stock default.pa) did not start; see $LOG"
}

start_pipewire() {
    need pipewire
    need wireplumber
    need pipewire-pulse
    need dbus-daemon
    # As root without systemd: a private runtime folder and session bus, then the
    # three daemons a desktop session starts. pipewire-pulse listens on
    # $XDG_RUNTIME_DIR/pulse/native, which is $SOCKET.
    local bus="unix:path=$RIG_DIR/bus"
    : >"$PIDS_FILE"
    dbus-daemon --session --address="$bus" --fork --print-pid >>"$PIDS_FILE" \
        || die "dbus-daemon did not start"
    local daemon
    for daemon in pipewire wireplumber pipewire-pulse; do
        HOME="$RIG_DIR/home" XDG_RUNTIME_DIR="$RIG_DIR" XDG_CONFIG_HOME="$RIG_DIR/home/.config" \
            XDG_STATE_HOME="$RIG_DIR/home/.state" DBUS_SESSION_BUS_ADDRESS="$bus" \
            setsid "$daemon" >>"$RIG_DIR/$daemon.log" 2>&1 </dev/null &
        echo $! >>"$PIDS_FILE"
        if [[ "$daemon" == pipewire ]]; then
            sleep 0.3  # the others connect to it
        fi
    done
}

start() {
    local echo_gain="off"
    local profile="${VT_RIG_PROFILE:-lab}"
    while [[ $# -gt 0 ]]; do
        case "$1" in
            --echo-gain) [[ $# -ge 2 ]] || die "--echo-gain needs a value in dB"; echo_gain="$2"; shift 2 ;;
            --echo-gain=*) echo_gain="${1#*=}"; shift ;;
            --profile) [[ $# -ge 2 ]] || die "--profile needs lab, pulse-desktop or pipewire"; profile="$2"; shift 2 ;;
            --profile=*) profile="${1#*=}"; shift ;;
            *) die "unknown option for start: $1" ;;
        esac
    done
    case "$profile" in
        lab|pulse-desktop|pipewire) ;;
        *) die "unknown profile '$profile' (lab, pulse-desktop or pipewire)" ;;
    esac
    need pactl
    if is_running && [[ "$(running_profile)" != "$profile" ]]; then
        log "restarting: the running rig is $(running_profile), $profile was asked for"
        stop_daemon quiet
    fi
    if ! is_running; then
        stop_daemon quiet
        mkdir -p "$RUNTIME" "$RIG_DIR/home"
        chmod 700 "$RIG_DIR" "$RUNTIME"
        case "$profile" in
            lab) need pulseaudio; start_lab ;;
            pulse-desktop) need pulseaudio; start_pulse_desktop ;;
            pipewire) start_pipewire ;;
        esac
        echo "$profile" >"$PROFILE_FILE"
        for _ in $(seq 200); do
            is_running && break
            sleep 0.05
        done
        is_running || die "the $profile sound server does not answer on $SOCKET; see $RIG_DIR/*.log"
        log "$profile sound server running (socket $SOCKET)"
    fi
    ensure_sink vt_mic "voiceterm_test_microphone"
    ensure_sink vt_speaker "voiceterm_test_speaker"
    if [[ "$profile" == lab ]]; then
        ensure_keepalive
    fi
    set_defaults
    set_echo "$echo_gain"
    if [[ "$profile" == lab ]]; then
        wait_until_settled
    else
        wait_for_sinks
    fi
    print_env
}

# pipewire-pulse keeps the default devices in the session manager's metadata, which
# wireplumber makes a moment (seconds, on a busy machine) after the server answers;
# until then set-default-* fails with "Not supported". Retry for at most 15 s.
set_defaults() {
    local error=""
    for _ in $(seq 300); do
        if error=$(pactl set-default-sink vt_speaker 2>&1) \
            && error=$(pactl set-default-source vt_mic.monitor 2>&1); then
            return
        fi
        sleep 0.05
    done
    die "the default devices could not be set within 15 s (pactl: $error); see $RIG_DIR/*.log"
}

# PipeWire makes a sink's node a moment after pactl returns; a desktop's sinks are
# otherwise left as they are (idle, then suspended), which is what is under test.
wait_for_sinks() {
    for _ in $(seq 100); do
        pactl list short sinks | awk '{print $2}' | grep -qx vt_speaker \
            && pactl list short sources | awk '{print $2}' | grep -qx vt_mic.monitor && return
        sleep 0.05
    done
    log "warning: the sinks did not appear within 5 s"
}

stop_daemon() {  # [quiet]
    local pid stopped=0
    pid=$(daemon_pid || true)
    if [[ -n "${pid:-}" ]] && ! pid_gone "$pid"; then
        stop_pid "$pid"
        stopped=1
    fi
    if [[ -f "$PIDS_FILE" ]]; then
        # pipewire-pulse first, dbus last: the reverse of the start order.
        for pid in $(tac "$PIDS_FILE"); do
            if ! pid_gone "$pid"; then
                stop_pid "$pid"
                stopped=1
            fi
        done
        rm -f "$PIDS_FILE"
    fi
    if (( stopped )); then
        [[ "${1:-}" == quiet ]] || log "sound server stopped"
    elif [[ "${1:-}" != quiet ]]; then
        log "not running"
    fi
    rm -rf "$RUNTIME" "$PROFILE_FILE" "$RIG_DIR/bus"
}

# Gone, or a zombie that nobody has reaped yet (the rig's daemons outlive the shell
# that started them, and PID 1 in a container may reap them late).
pid_gone() {
    [[ ! -e "/proc/$1" ]] || [[ "$(awk '{print $3}' "/proc/$1/stat" 2>/dev/null)" == Z ]]
}

stop_pid() {
    kill "$1" 2>/dev/null || true
    for _ in $(seq 100); do
        pid_gone "$1" && return 0
        sleep 0.05
    done
    kill -9 "$1" 2>/dev/null || true
}

status() {
    if is_running; then
        echo "running: profile $(running_profile), socket $SOCKET"
        pactl list short sinks
        local mod
        for mod in $(loopback_modules); do
            echo "echo loopback: module $mod"
            pactl list sink-inputs | grep -A12 "Owner Module: $mod" | grep -m1 'Volume:' || true
        done
        print_env
    else
        echo "not running"
        return 3
    fi
}

cmd="${1:-}"
[[ $# -gt 0 ]] && shift
case "$cmd" in
    start) start "$@" ;;
    stop) stop_daemon ;;
    status) status ;;
    profile) is_running || die "rig not running (scripts/audio_rig.sh start)"; running_profile ;;
    env) is_running || die "rig not running (scripts/audio_rig.sh start)"; print_env ;;
    echo) [[ $# -eq 1 ]] || die "usage: audio_rig.sh echo DB|off"
          is_running || die "rig not running (scripts/audio_rig.sh start)"; set_echo "$1" ;;
    *) sed -n '2,/^# Why/p' "$0" | sed '$d' | sed 's/^# \{0,1\}//' >&2; exit 2 ;;
esac
