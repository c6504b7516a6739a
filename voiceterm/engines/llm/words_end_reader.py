"""P(end of the user's message) read by the in-process model at a pause.

At a pause the prompt is read in two parts, split after the user's words: the
next-token distribution there says how likely their message ends (the template's
end-of-message token, or a fitted probe over the whole distribution). The rest of
the prompt is read after, and finds this part in the KV cache.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import replace
from typing import Any

from voiceterm.engines.llm.loaded import LoadedLlama
from voiceterm.engines.llm.messages import ChatMessage
from voiceterm.engines.llm.words_end import EndProbe, WordsEnd, end_probability, user_words_end


class WordsEndReader:
    """Reads P(end of message) after the user's words; remembers the latest.

    Args:
        model: The model (read on all cores).
    """

    def __init__(self, model: LoadedLlama) -> None:
        self._model = model
        self.latest: WordsEnd | None = None
        """P(end of the user's message) after the words the latest pause read."""
        self.probe: EndProbe | None = None
        """Reads P(end of message) from the whole next-token distribution (else the
        plain probability of the template's end-of-message token)."""
        self._key: tuple[int, ...] = ()

    def probability(self, words: str) -> float | None:
        """P(end of the user's message) after ``words``, if the latest pause read them."""
        latest = self.latest
        return latest.probability if latest is not None and latest.words == words else None

    def forget(self) -> None:
        """The KV cache was cleared (or the probe changed): read the words again next time."""
        self._key = ()

    def read(self, messages: Sequence[ChatMessage], prompt: list[int]) -> None:
        """Read ``prompt`` up to the end of the user's words; keep P(end of message) there.

        The same words read again (a speculation after a warm-up) cost nothing.
        Sets :attr:`latest` (``None`` if there are no user words to judge).
        """
        prompts = self._model.prompts
        count = user_words_end(messages, prompt, prompts.render, prompts.special_tokens)
        if count is None:
            self.latest = None
            return
        words = str(messages[-1]["content"])
        key = tuple(prompt[: count + 1])
        if key == self._key and self.latest is not None:
            self.latest = replace(self.latest, words=words, read_s=0.0)
            return
        logits, read_s = self._logits_after(prompt, count)
        probe = self.probe
        self.latest = WordsEnd(
            words=words,
            probability=(
                end_probability(logits, prompt[count])
                if probe is None
                else probe.probability(logits)
            ),
            read_s=read_s,
        )
        self._key = key

    def _logits_after(self, prompt: list[int], count: int) -> tuple[Any, float]:
        """Evaluate the first ``count`` tokens (reusing the cached start).

        Returns:
            The logits there, and the seconds the evaluation took.
        """
        import numpy as np

        llm = self._model.llm
        self._model.slide_cache(prompt)
        cached = llm.input_ids[: llm.n_tokens].tolist()
        same = 0
        for ours, theirs in zip(cached, prompt[: count - 1], strict=False):
            if ours != theirs:
                break
            same += 1
        started = time.monotonic()
        llm.n_tokens = same
        with self._model.threads.compute_step(every_core=True):
            llm.eval(prompt[same:count])
        logits = np.ctypeslib.as_array(
            self._model.llama_cpp.llama_get_logits(llm.ctx), shape=(llm.n_vocab(),)
        )
        return logits, time.monotonic() - started
