"""pure decision code."""
