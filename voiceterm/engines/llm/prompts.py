"""The in-process model's prompts as text and tokens: rendering, counting, cutting.

:class:`ModelPrompts` renders a conversation with the model's own chat template
(:mod:`.template`) and tokenizes it as llama.cpp will evaluate it. It only uses
the tokenizer, so it may be called from any thread.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from voiceterm.engines.llm.messages import ChatMessage, ToolSpecs
from voiceterm.engines.llm.template import ChatTemplate


class ModelPrompts:
    """A loaded model's prompts: its chat template, and its tokenizer.

    Args:
        llm: The ``llama_cpp.Llama`` model.
    """

    def __init__(self, llm: Any) -> None:
        self._llm = llm
        self.template = ChatTemplate(llm)

    def render(self, messages: Sequence[ChatMessage], tools: ToolSpecs = None) -> str:
        """The prompt text the model sees, from its own chat template."""
        return self.template.render(messages, tools)

    def tokens(self, messages: Sequence[ChatMessage], tools: ToolSpecs = None) -> list[int]:
        """The tokens of :meth:`render`, as they will be evaluated."""
        return self.special_tokens(self.render(messages, tools))

    def special_tokens(self, text: str) -> list[int]:
        """``text`` tokenized as a prompt is: special tokens recognised, BOS as the model wants."""
        tokens: list[int] = self._llm.tokenize(text.encode("utf-8"), add_bos=False, special=True)
        bos = self._llm.token_bos()
        if self.template.add_bos and bos >= 0 and (not tokens or tokens[0] != bos):
            tokens.insert(0, bos)
        return tokens

    def size(self, messages: Sequence[ChatMessage], tools: ToolSpecs) -> int:
        """Tokens of the prompt rendered from ``messages`` (a size for the fitter)."""
        return len(self.tokens(messages, tools))

    def count(self, text: str) -> int:
        """How many tokens ``text`` is (no special tokens added)."""
        return len(self._llm.tokenize(text.encode("utf-8"), add_bos=False, special=False))

    def keep_tail(self, text: str, room: int) -> str:
        """The end of ``text`` that fits in ``room`` tokens."""
        tokens = self._llm.tokenize(text.encode("utf-8"), add_bos=False, special=False)
        return str(self._llm.detokenize(tokens[-room:]).decode("utf-8", errors="ignore"))

    def token_piece(self, token: int) -> str:
        """The text of one token, special tokens written out (``<|im_end|>``)."""
        piece: bytes = self._llm.detokenize([token], special=True)
        return piece.decode("utf-8", errors="replace")

    def token_ids(self, text: str) -> list[int]:
        """``text``'s tokens, special tokens recognised, no BOS."""
        return list(self._llm.tokenize(text.encode("utf-8"), add_bos=False, special=True))

    @property
    def vocabulary_size(self) -> int:
        """How many tokens the model knows (the length of a row of logits)."""
        return int(self._llm.n_vocab())
