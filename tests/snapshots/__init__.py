"""Snapshot tests of the Textual app's screens."""
