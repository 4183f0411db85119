"""offline tools."""
