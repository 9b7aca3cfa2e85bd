"""Call tracking for Wagtail."""

__version__ = "0.1.0"
