"""Keeping an eye on an LLM server that does not answer, until it does."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from voiceterm.engines.llm.protocol import ChecksServer, checks_server
from voiceterm.errors import VoicetermError
from voiceterm.events import StageStatus

SERVER_RETRY_S = 2.0
"""How often an LLM server that did not answer is asked again."""


class ServerWatch:
    """Asks an LLM server that failed again every :data:`SERVER_RETRY_S` seconds.

    The status line shows why it failed meanwhile, and says when it answers again;
    a question asked in between gets the same explanation and stays in the
    conversation. An engine that is no server is never watched.
    """

    def __init__(self, publish: Callable[[StageStatus], None]) -> None:
        self._publish = publish
        self.task: asyncio.Task[None] | None = None

    def watch(self, engine: object, *, check_first: bool) -> None:
        """Start watching ``engine`` if it is a server that is not ready (and not yet watched)."""
        if not checks_server(engine) or engine.ready:
            return
        if self.task is not None and not self.task.done():
            return
        self.task = asyncio.get_running_loop().create_task(
            self._until_it_answers(engine, check_first), name="llm-server-watch"
        )

    async def _until_it_answers(self, engine: ChecksServer, check_first: bool) -> None:
        # At start-up the loader has said why already; after a failed answer, say it.
        shown = "" if check_first else engine.last_error
        while True:
            if not check_first:
                await asyncio.sleep(SERVER_RETRY_S)
            check_first = False
            try:
                await asyncio.to_thread(engine.check)
            except VoicetermError as error:
                if str(error) != shown:
                    shown = str(error)
                    detail = f"{error} (retrying every {SERVER_RETRY_S:.0f} s)"
                    self._publish(StageStatus(stage="llm", state="failed", detail=detail))
                continue
            self._publish(StageStatus(stage="llm", state="ready", detail=engine.description))
            return
