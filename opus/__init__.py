"""OPUS: a UWS 1.1 job control system for research computing."""

__version__ = "0.1.0"
