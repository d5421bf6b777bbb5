"""Transfers: Consentio exports into other systems (SQL databases)."""
