"""gateway: a reverse-proxy API gateway that enforces OAuth2 bearer-JWT auth."""

__version__ = "0.1.0"

__all__ = ["__version__"]
