"""P(end of the user's message) from an OpenAI-compatible server, for the learned end of turn.

At a pause, one token of ``/v1/completions`` after the user's words (rendered
with the server's chat template) gives the top ``logprobs``; the probability of
the template's end-of-message marker among them is the number. It needs the
template (llama-server tells it at ``/props``) and logprobs; without them the
hand-set rule decides.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

from voiceterm.engines.llm.messages import ChatMessage
from voiceterm.engines.llm.server_http import as_dict
from voiceterm.engines.llm.words_end import end_marker, server_end_probability

log = logging.getLogger(__name__)


class ServerWordsEnd:
    """Reads P(end of message) at pauses, with the blocking client, once asked to.

    Args:
        wanted: Ask from the start (else only after :meth:`ask`).
    """

    def __init__(self, *, wanted: bool = False) -> None:
        self._wanted = wanted
        self._no_logprobs = False
        self._latest: tuple[str, float] | None = None
        self._marker_ids: dict[str, list[int]] = {}
        self._timeout_s = 3.0

    def ask(self) -> None:
        """From now on, each pause also asks how likely the user's message ends there."""
        self._wanted = True

    def available(self, template: str | None) -> bool:
        """Whether it is wanted and the server can say (its template known, logprobs given)."""
        return self._wanted and template is not None and not self._no_logprobs

    def probability(self, words: str) -> float | None:
        """P(end of the user's message) after ``words``, if the latest pause read them."""
        latest = self._latest
        return latest[1] if latest is not None and latest[0] == words else None

    def read(
        self,
        client: Any,
        base: str,
        model: str,
        template: str,
        messages: Sequence[ChatMessage],
        *,
        timeout_s: float,
    ) -> None:
        """One token after the user's words; keep P(end marker) (never raises).

        ``timeout_s`` bounds the asking of the marker's token ids.
        """
        self._timeout_s = timeout_s
        try:
            self._read(client, base, model, template, messages)
        except Exception as error:
            log.info("llm: no P(end of message) from %s: %s", base, error)
            self._no_logprobs = True

    def _read(
        self, client: Any, base: str, model: str, template: str, messages: Sequence[ChatMessage]
    ) -> None:
        words = messages[-1]["content"] if messages else None
        if messages[-1]["role"] != "user" or not isinstance(words, str):
            return
        from llama_cpp.llama_chat_format import Jinja2ChatFormatter

        formatter: Any = Jinja2ChatFormatter(
            template=template, eos_token="", bos_token="", add_generation_prompt=True
        )
        text = str(formatter(messages=[dict(m) for m in messages]).prompt)
        at = text.rfind(words)
        marker = end_marker(text[at + len(words) :]) if at >= 0 and words.strip() else None
        if marker is None:
            return
        request: dict[str, Any] = {
            "model": model,
            "prompt": text[: at + len(words)],
            "max_tokens": 1,
            "temperature": 0.0,
            "logprobs": 20,
            "extra_body": {"cache_prompt": True, "n_probs": 20},
        }
        choice = client.completions.create(**request).choices[0]
        probability = server_end_probability(as_dict(choice.logprobs), marker)
        if probability is None and not choice.text and choice.finish_reason == "stop":
            # The marker was the model's first choice, and this server (llama-cpp-python's)
            # stops before listing it: ask again with the marker forbidden, for its number.
            ids = self._token_ids(client, base, marker)
            if ids:
                request["logit_bias"] = {str(i): -100 for i in ids}
                again = client.completions.create(**request)
                probability = server_end_probability(as_dict(again.choices[0].logprobs), marker)
        if probability is None:
            log.info("llm: %s gives no logprobs; the hand-set end-of-turn rule decides", base)
            self._no_logprobs = True
            return
        self._latest = (words, probability)

    def _token_ids(self, client: Any, base: str, text: str) -> list[int]:
        """The server's token ids of a special marker (llama-server, llama-cpp-python)."""
        if text in self._marker_ids:
            return self._marker_ids[text]
        ids: list[int] = []
        for url, body in (
            (f"{base}/tokenize", {"content": text, "parse_special": True}),
            (f"{base}/extras/tokenize", {"input": text}),
        ):
            try:
                response = client._client.post(
                    url, json=body, headers=dict(client.auth_headers), timeout=self._timeout_s
                )
                if response.status_code == 200:
                    found = response.json().get("tokens")
                    if isinstance(found, list) and len(found) == 1:
                        ids = [int(found[0])]
                        break
            except Exception:  # not this server's endpoint
                continue
        self._marker_ids[text] = ids
        return ids
