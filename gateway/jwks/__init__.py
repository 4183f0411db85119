"""remote key sets."""
