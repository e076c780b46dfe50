"""Casemate detectors."""
