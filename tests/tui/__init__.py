"""Pilot tests of the Textual app, driven with a fake agent."""
