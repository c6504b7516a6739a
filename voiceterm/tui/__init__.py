"""The Textual UI: the only part of voiceterm that imports textual.

from voiceterm.tui.app import VoicetermApp
VoicetermApp(agent).run()

Nothing is imported here: ``voiceterm view`` needs only the timeline screen, and
the whole app's imports would add a tenth of a second to opening a recording.
"""
