"""Plain-Python clients for Entra ID, Business Central and iPaaS.com (no Dagster here)."""
