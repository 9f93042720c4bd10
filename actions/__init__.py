"""Backline custom actions (rasa-sdk)."""
