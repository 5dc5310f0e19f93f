"""Shared test helpers: receivers, collectors, managers and payload tables.

Imported one way only: ``from tests.helpers.<module> import ...``.
"""
