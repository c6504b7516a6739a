"""voiceterm: an offline voice assistant in the terminal.

The streaming core is importable without any audio or ML library::

    from voiceterm import Bus, Bridge, Message
"""

from voiceterm.bridge import Bridge, Route
from voiceterm.bus import Bus, Message
from voiceterm.nodes import ConversationContext, Node, ReasoningNode

__all__ = ["Bridge", "Bus", "ConversationContext", "Message", "Node", "ReasoningNode", "Route"]
__version__ = "0.1.0"
