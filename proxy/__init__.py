"""Casemate proxy."""
