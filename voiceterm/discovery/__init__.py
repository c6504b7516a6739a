"""Chat models other tools already downloaded (Ollama, Hugging Face, LM Studio), and
``models/``: found on disk by their own layouts, named as a user would type them.

Reads folders and GGUF headers only; imports no ML library and downloads nothing.
"""

from voiceterm.discovery.catalog import Catalog, FoundModel, discover

__all__ = ["Catalog", "FoundModel", "discover"]
