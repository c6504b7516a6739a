"""Speech engines (VAD, STT, LLM, TTS): each imports its library lazily, on first use."""
