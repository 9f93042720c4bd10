"""Backline: a symptom-triage chatbot engine for back problems."""

__version__ = "0.1.0"
