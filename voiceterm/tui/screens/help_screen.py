"""The help screen: what voiceterm is doing and which keys do what."""

from __future__ import annotations

from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Markdown

HELP = """\
# voiceterm

Talk to it, or type below and press **Enter**: it answers with voice either way.
Start talking while it speaks and it stops to listen (barge-in).
Nothing leaves this machine.

| key | what it does |
|---|---|
| **F2** | mute or unmute the microphone (or click the meter) |
| **F3** | push-to-talk or always listening |
| **F4** | in push-to-talk: start / stop talking |
| **Esc** | interrupt the agent |
| **Ctrl+L** | clear the conversation |
| **Ctrl+T** | the timeline: every chunk of every turn, with timings |
| **Ctrl+R** | start / stop recording the session (● REC shows while it records) |
| **Ctrl+P** | all commands |
| **F1** | this help |
| **Ctrl+Q** | quit |

In the timeline: **↑ ↓** choose a turn, **Enter** or **Tab** go to its chunks,
**← →** move along a lane, **↑ ↓** change lane, **+ −** zoom, **e** export a
Chrome trace (open it in ui.perfetto.dev), **m** export the conversation as
Markdown, **Esc** back.

The status line shows what the agent is doing (listening, hearing you,
thinking, speaking), the microphone level with the voice detector's light, and
the models and devices in use.
"""


class HelpScreen(ModalScreen[None]):
    """Keys and a short explanation; any of Esc, F1 or q closes it."""

    BINDINGS = [Binding("escape,f1,q", "app.pop_screen", "Close")]

    def compose(self) -> ComposeResult:
        with VerticalScroll(id="help-box"):
            yield Markdown(HELP)
