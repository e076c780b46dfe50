"""Casemate bench."""
