"""The LLM stage: a chat model streamed piece by piece, behind a small protocol.

The pipeline (``voiceterm.pipeline.respond``) depends on :mod:`.protocol` only:
:class:`ChatEngine` (an async ``stream_chat`` of text and :class:`ToolRequest`
pieces, ``n_ctx``) and the
optional capabilities :class:`Speculates`, :class:`WarmsUp`, :class:`ReadsAhead`
and :class:`HasChatTemplate`. Two backends implement it: :class:`LlamaEngine`, a
GGUF model run in process by llama-cpp-python, and ``.server.ChatServerEngine``, an
OpenAI-compatible server (llama-server, Ollama, vLLM, LM Studio) reached with the
``openai`` SDK, imported only when chosen. LlamaEngine's parts have a module each:

- :mod:`.engine`: :class:`LlamaEngine`, composing the parts below;
- :mod:`.model`: the loaded model, its threads and tokenizer (``LlamaEngine``'s base);
- :mod:`.loading`: importing ``llama_cpp`` (lazily), its log, GGUF checks, the 8-bit copy;
- :mod:`.loaded`: the loaded model's handles, shared by the parts that run it;
- :mod:`.template` and :mod:`.prompts`: the model's own chat template; prompts as tokens;
- :mod:`.messages`: chat messages, fitting them into the context window (one
  fitter for both backends), the room kept for a reply;
- :mod:`.replies`: generating with the KV cache kept between calls;
- :mod:`.words_end_reader`: P(end of the user's message) read at a pause;
- :mod:`.scoring`: how likely the model finds a text (for its 8-bit copy);
- :mod:`.cache`: sliding the KV cache over dropped turns;
- :mod:`.sampling`: sampling tokens, cancellably; grammars;
- :mod:`.speculation`: a reply's start sampled ahead of time;
- :mod:`.threads`: thread counts, and sharing the cores with the other engines;
- :mod:`.stats`: what a generation cost;
- :mod:`.stream`: :func:`astream_chat`, a blocking model's reply streamed on the event loop.

The server backend's parts: :mod:`.server_http` (the SDK's clients, failures
explained), :mod:`.server_models`, :mod:`.server_reply` (one streamed completion
as pieces) and :mod:`.server_words_end`.

Importing the package loads no ML library; ``llama_cpp`` is imported when a
model is loaded.
"""

from voiceterm.engines.llm.cache import CacheSlide, find_slide
from voiceterm.engines.llm.engine import LlamaEngine
from voiceterm.engines.llm.messages import ChatMessage
from voiceterm.engines.llm.protocol import (
    ChatEngine,
    HasChatTemplate,
    ReadsAhead,
    ReplyPiece,
    SampledStart,
    Speculates,
    ToolRequest,
    WarmsUp,
)
from voiceterm.engines.llm.sampling import SamplingSettings, json_schema_grammar
from voiceterm.engines.llm.stats import GenerationStats, StopReason
from voiceterm.engines.llm.stream import astream_chat
from voiceterm.engines.llm.threads import default_thread_count, prompt_thread_count

__all__ = [
    "CacheSlide",
    "ChatEngine",
    "ChatMessage",
    "GenerationStats",
    "HasChatTemplate",
    "LlamaEngine",
    "ReadsAhead",
    "ReplyPiece",
    "SampledStart",
    "SamplingSettings",
    "Speculates",
    "StopReason",
    "ToolRequest",
    "WarmsUp",
    "astream_chat",
    "default_thread_count",
    "find_slide",
    "json_schema_grammar",
    "prompt_thread_count",
]
