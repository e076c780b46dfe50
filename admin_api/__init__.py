"""Casemate admin_api."""
