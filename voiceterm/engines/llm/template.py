"""The model's own chat template, rendered with llama-cpp-python's Jinja sandbox."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from voiceterm.engines.llm.messages import ChatMessage, ToolSpecs
from voiceterm.errors import EngineError

# Used only when a GGUF carries no chat template of its own.
CHATML_TEMPLATE = (
    "{% for message in messages %}{{'<|im_start|>' + message['role'] + '\\n' + "
    "message['content'] + '<|im_end|>' + '\\n'}}{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}"
)


class ChatTemplate:
    """The Jinja template stored in the GGUF (``tokenizer.chat_template``), else ChatML.

    Any GGUF chat model works without naming its format.
    """

    def __init__(self, llm: Any) -> None:
        from llama_cpp.llama_chat_format import Jinja2ChatFormatter

        metadata: dict[str, str] = llm.metadata
        template = metadata.get("tokenizer.chat_template")
        self.source = "gguf" if template else "chatml-fallback"
        self.add_bos = metadata.get("tokenizer.ggml.add_bos_token") == "true"
        model = llm._model
        eos, bos = llm.token_eos(), llm.token_bos()
        self._formatter: Any = Jinja2ChatFormatter(
            template=template or CHATML_TEMPLATE,
            eos_token=model.token_get_text(eos) if eos >= 0 else "",
            bos_token=model.token_get_text(bos) if bos >= 0 else "",
            add_generation_prompt=True,
        )

    def render(self, messages: Sequence[ChatMessage], tools: ToolSpecs) -> str:
        try:
            response = self._formatter(messages=[dict(m) for m in messages], tools=tools)
        except Exception as error:  # a template may raise_exception() on roles it dislikes
            raise EngineError(
                f"The model's chat template rejected the conversation: {error}.",
                hint="this model may not support system messages or tool results",
            ) from None
        return str(response.prompt)
