"""pg-ambassador: the app dials localhost; each PostgreSQL connection goes to the right server."""
