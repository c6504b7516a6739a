"""Audio: what flows (frames), playback, files, and the PortAudio devices, in layers.

Each layer imports only the ones before it::

    frames, resample       AudioFrame, PlaybackTag, the source/sink protocols; soxr
      -> playback          PlaybackEngine, SinkCallbacks, EngineSink, SilentSink
        -> wavio           WAV files, and the file source and sink
        -> portaudio       sounddevice: devices, opening streams, StreamClock
          -> microphone    MicrophoneSource
          -> speaker       Player

echo and echo_delay (the echo canceller) sit beside them, on frames and resample.
Files, replays and tests play through ``playback`` without loading PortAudio; an
import contract in pyproject.toml keeps it so.
"""
