"""Widgets of the voiceterm app."""
