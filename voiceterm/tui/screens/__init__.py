"""Screens of the voiceterm app (timeline, help)."""
