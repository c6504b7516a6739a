"""The Textual UI: the only part of voiceterm that imports textual.

from voiceterm.tui import VoicetermApp
VoicetermApp(agent).run()
"""

from voiceterm.tui.app import VoicetermApp
from voiceterm.tui.protocol import AgentLike

__all__ = ["AgentLike", "VoicetermApp"]
