#!/usr/bin/env bash
# The whole check, as CI runs it: format, lint, types, import contracts, tests.
set -euo pipefail
cd "$(dirname "$0")/.."
export HF_HUB_OFFLINE=1
bin=.venv/bin
echo "== ruff format --check"; "$bin/ruff" format --check .
echo "== ruff check";          "$bin/ruff" check .
echo "== mypy";                "$bin/mypy"
echo "== import contracts";    "$bin/lint-imports"
echo "== pytest";              "$bin/pytest" "$@"
# The live tests that matter most, again on the sound servers desktops run: PulseAudio
# with Debian's stock default.pa (idle sinks suspend) and PipeWire with pipewire-pulse.
if (( $# == 0 )); then
    for profile in pulse-desktop pipewire; do
        echo "== pytest -m desktop, on the $profile rig"
        VT_RIG_PROFILE=$profile "$bin/pytest" -m desktop tests/audio
    done
fi
