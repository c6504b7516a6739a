"""Sessions on record: record a session, replay it through today's code, view it later.

A recording is a folder (``0700``, files ``0600``)::

    session.json   format version, settings, model identities, versions, start and end
    events.jsonl   every bus message, one JSON line each, appended and flushed as it
                   happens: time, source (the stage), turn, event type and fields
                   (audio payloads left out)
    clock.jsonl    where the audio's samples sit on the session's monotonic clock
    audio-NNNN.flac  60 s of 16 kHz stereo: left the microphone as captured (before
                   echo cancellation), right what the speaker played (the echo
                   canceller's reference), sample for sample on the microphone's clock
    audio-NNNN.pcm   the segment being written (raw int16 stereo), appended and
                   flushed twice a second; it becomes the FLAC when full
    audio.jsonl    the finished segments and their lengths
    talk.md        the conversation as Markdown, rewritten after every answer

A session killed outright keeps every event written and all of its audio but the
last half second: ``view`` opens it and ``replay`` runs up to the kill.
"""

from voiceterm.recording.format import FORMAT_VERSION, RecordingError

__all__ = ["FORMAT_VERSION", "RecordingError"]
