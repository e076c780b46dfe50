"""Admin API resources; each module declares its routes on its own `routes` table."""
