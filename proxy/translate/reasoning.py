"""Reasoning settings, spelled alike in both APIs (chat's ``reasoning_effort``, Responses' ``reasoning``).

One list each, for both directions and for the configuration, which offers the same efforts.
"""

REASONING_EFFORTS = ("none", "minimal", "low", "medium", "high", "xhigh")
REASONING_SUMMARIES = ("auto", "concise", "detailed")
