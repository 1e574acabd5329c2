"""Flu outbreak monitoring for NY, NJ and PA: Kafka to warehouse to dashboard."""

__version__ = "0.1.0"
