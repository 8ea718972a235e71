"""harness: evaluate math language models with and without code, and train them to decide when to use it."""

__version__ = "0.1.0"
