"""The LLM stage as a package (being split; see engine.py)."""

from voiceterm.engines.llm.engine import *  # noqa: F403
from voiceterm.engines.llm.engine import _import_llama_cpp  # noqa: F401
