"""Casemate pipeline."""
