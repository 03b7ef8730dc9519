"""Chat Completions to Responses translating reverse proxy."""

__version__ = "0.1.0"
