"""SCIM 2.0 (RFC 7643 / RFC 7644): filter language, PATCH operations and the resource documents."""
