"""Maintain the official-style Python images for Windows containers."""

__version__ = "0.1.0"
