"""Outbreak alerts pushed to people: each new alert episode once (docs/alerts.md)."""
