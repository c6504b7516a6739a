"""Live latency through real devices: the real ``voiceterm --headless`` on the PulseAudio rig.

Everything is measured from the SIGNALS, on one clock: this script plays the
user's speech into the rig's microphone sink (``vt_mic``) and records the rig's
speaker (``vt_speaker.monitor``) through PortAudio, with every sample stamped
with PortAudio's DAC/ADC time mapped onto ``time.monotonic()``
(``benchmarks/rig.py: RigIO``). A click check at the start proves the stamps
(a click played into ``vt_mic`` must be captured from ``vt_mic.monitor`` at the
time it was played).

Reported:

* voice-to-voice: last voiced sample of the question (the app's VAD run on the
  clip) -> first audible sample of the answer on the speaker; next to it the
  app's own figure (its timings line) and the file-based figure for the same
  clips in the same session, twice: each clip a fresh conversation
  (``scripts/bench_voice.py``'s streaming turn: ``WavFileSource`` -> pipeline ->
  ``WavFileSink``, paced in real time), and all clips as one conversation, as the
  live app hears them (same opening turn, same order, history kept, each clip
  said after 1.5 s of quiet). The fresh clips are said twice: on the quiet
  machine before the rig starts, and again beside each live turn (engines of
  their own, the idle live app, PulseAudio and this script's recorder running
  alike), for a figure taken side by side. The conversation is the like-for-like
  control for the devices' cost: the live app answers turn 20 with 19 turns of
  history, and a longer prompt takes the LLM longer (``--skip-conversation``
  leaves it out).
* barge-in, echo off: the onset of the user's speech in the microphone signal
  (the VAD's first voiced frame of the clip) -> the last assistant sample on the
  speaker, over chained trials (each barge-in asks for the next answer). Then
  ``--coughs`` fresh answers each get an 80 ms cough; one that cuts the answer off
  is counted, and so is how long the answer fell silent around it (with
  ``barge_in.hold`` a cough holds the answer until the hold is let go).
  ``--hold on off`` and ``--min-speech-ms 150 0`` repeat both for each setting
  (hold off: the answer is cut after min_speech_ms of speech; hold on, the
  default: it is held at the VAD's start and cut once the speech is confirmed).
* echo, with the rig's loopback (speaker -> microphone) at ``--echo-gain`` dB, for
  each ``--echo-modes`` mode: self-interruptions and phantom turns over
  ``--answers`` complete answers, and barge-ins caught over the echo.
  ``off`` (no echo handling) is run as a control over a few answers: it shows
  that the echo path really reaches the app.

Runtime with the defaults (20 turns, 20 barge-ins, 10 coughs, 50 answers per echo
mode, half_duplex and aec): about 45 minutes on 2 cores, most of it the 2 x 50
answers (``--answers`` sets it); ``--quick`` runs 5 of each in about 9 minutes.
Answers are capped at ``--max-tokens`` (48) in the live app and in the
file-based run alike, so that turns take seconds, not half a minute.

Usage: .venv/bin/python -m benchmarks.live [--turns 20] [--barge-ins 20]
           [--answers 50] [--echo-modes half_duplex aec] [--echo-gain -6]
           [--hold on off] [--min-speech-ms 150 0] [--coughs 10] [--skip-file] [--quick]
           [--json out.json] [--app-flag=--llm-speculate-tokens=0 ...] [-v]
           [--background-load N] [--barge-ins-per-app 3]

``--background-load N`` runs all of it twice: on the idle machine, then beside N
busy programs (pure-Python spin loops, started before the second run and killed
after it, whatever happens), and prints the headline figures side by side.
Needs pulseaudio, pulseaudio-utils and espeak-ng (scripts/setup.sh --dev).
"""
