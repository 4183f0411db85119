"""the running gateway."""
