#!/usr/bin/env bash
# A real audio rig for tests and demos, with no sound card: a private PulseAudio
# daemon with two null sinks.
#
#   vt_mic      we play speech into it; its monitor "vt_mic.monitor" is the microphone
#   vt_speaker  the app plays into it; record "vt_speaker.monitor" to hear the app
#   (echo)      optional module-loopback vt_speaker.monitor -> vt_mic at a set gain,
#               i.e. the microphone hears the speaker, as on a laptop
#
# Usage:
#   scripts/audio_rig.sh start [--echo-gain DB]   start (or reconfigure) the rig; prints env
#   scripts/audio_rig.sh echo DB|off              change or remove the echo loopback
#   scripts/audio_rig.sh env                      print the env vars (rig must be running)
#   scripts/audio_rig.sh status                   say whether it runs, list sinks and loopback
#   scripts/audio_rig.sh stop                     tear everything down
#
# `eval "$(scripts/audio_rig.sh start)"` sets PULSE_SERVER, PULSE_SINK and PULSE_SOURCE
# in the calling shell, so PortAudio (through ALSA's "pulse" plugin, Debian's
# libasound2-plugins) captures vt_mic.monitor and plays into vt_speaker.
#
# Why it looks like this: we run as root, where `pulseaudio --start` is refused and a
# per-user runtime dir may not exist. A user-mode daemon (--system=false) with its own
# runtime dir, HOME and anonymous auth on a unix socket works as root and needs no
# D-Bus, no cookie and no login session. It starts with -n (no default.pa), so it
# never touches real hardware. Everything it owns lives in $VT_RIG_DIR.
# --realtime/--high-priority: as root PulseAudio gives its sink threads SCHED_RR and
# itself nice -11, so the rig keeps time while the app under test loads both cores
# (without, a starved daemon delivered capture audio late and in lumps).
# Every command is idempotent and non-interactive (CI runs it from scratch).

set -euo pipefail

RIG_DIR="${VT_RIG_DIR:-/tmp/voiceterm-rig-$(id -u)}"
RUNTIME="$RIG_DIR/pulse"
SOCKET="$RUNTIME/native"
PIDFILE="$RUNTIME/pid"
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

start() {
    local echo_gain="off"
    while [[ $# -gt 0 ]]; do
        case "$1" in
            --echo-gain) [[ $# -ge 2 ]] || die "--echo-gain needs a value in dB"; echo_gain="$2"; shift 2 ;;
            --echo-gain=*) echo_gain="${1#*=}"; shift ;;
            *) die "unknown option for start: $1" ;;
        esac
    done
    need pulseaudio
    need pactl
    if ! is_running; then
        stop_daemon quiet
        mkdir -p "$RUNTIME" "$RIG_DIR/home"
        chmod 700 "$RIG_DIR" "$RUNTIME"
        # HOME/XDG_* point into the rig so the daemon reads and writes nothing of the user's.
        HOME="$RIG_DIR/home" XDG_RUNTIME_DIR="$RIG_DIR" XDG_CONFIG_HOME="$RIG_DIR/home/.config" \
            pulseaudio -n --daemonize=yes --system=false --exit-idle-time=-1 \
            --use-pid-file=yes --realtime=yes --high-priority=yes --log-level=notice \
            --log-target="file:$LOG" \
            -L "module-native-protocol-unix socket=$SOCKET auth-anonymous=1" \
            || die "pulseaudio did not start; see $LOG"
        for _ in $(seq 100); do
            is_running && break
            sleep 0.05
        done
        is_running || die "pulseaudio started but does not answer on $SOCKET; see $LOG"
        log "pulseaudio running (pid $(daemon_pid), socket $SOCKET)"
    fi
    ensure_sink vt_mic "voiceterm_test_microphone"
    ensure_sink vt_speaker "voiceterm_test_speaker"
    ensure_keepalive
    pactl set-default-sink vt_speaker
    pactl set-default-source vt_mic.monitor
    set_echo "$echo_gain"
    wait_until_settled
    print_env
}

stop_daemon() {  # [quiet]
    local pid
    pid=$(daemon_pid || true)
    if [[ -n "${pid:-}" ]] && kill -0 "$pid" 2>/dev/null; then
        kill "$pid" 2>/dev/null || true
        for _ in $(seq 100); do
            kill -0 "$pid" 2>/dev/null || break
            sleep 0.05
        done
        kill -0 "$pid" 2>/dev/null && kill -9 "$pid" 2>/dev/null || true
        [[ "${1:-}" == quiet ]] || log "pulseaudio (pid $pid) stopped"
    elif [[ "${1:-}" != quiet ]]; then
        log "not running"
    fi
    rm -rf "$RUNTIME"
}

status() {
    if is_running; then
        echo "running: pid $(daemon_pid), socket $SOCKET"
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
    env) is_running || die "rig not running (scripts/audio_rig.sh start)"; print_env ;;
    echo) [[ $# -eq 1 ]] || die "usage: audio_rig.sh echo DB|off"
          is_running || die "rig not running (scripts/audio_rig.sh start)"; set_echo "$1" ;;
    *) sed -n '2,20p' "$0" | sed 's/^# \{0,1\}//' >&2; exit 2 ;;
esac
