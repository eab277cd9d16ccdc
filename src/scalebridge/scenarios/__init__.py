"""Worked applications that run several scales and methods together (the demos use them)."""
