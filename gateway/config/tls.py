"""TLS contexts: the public listener's (reloadable in place) and each upstream's client side."""

from __future__ import annotations

import ssl
from pathlib import Path

__all__ = ["TlsError", "client_context", "load_server_chain", "server_context"]


class TlsError(ValueError):
    """A certificate or key cannot be used; the message is for the operator."""


def server_context(cert: Path, key: Path) -> ssl.SSLContext:
    """A server context: TLS 1.2 minimum, the library's modern cipher defaults, the given pair."""
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    load_server_chain(context, cert, key)
    return context


def load_server_chain(context: ssl.SSLContext, cert: Path, key: Path) -> None:
    """Load (or reload) a certificate and key into ``context``; new handshakes use them,
    established connections keep theirs."""
    try:
        context.load_cert_chain(cert, key)
    except FileNotFoundError as exc:
        raise TlsError(f"no such file: {exc.filename}") from None
    except PermissionError as exc:
        raise TlsError(f"cannot read {exc.filename}: permission denied") from None
    except ssl.SSLError as exc:
        if "KEY_VALUES_MISMATCH" in str(exc):
            raise TlsError(f"{cert} and {key} do not belong together") from None
        raise TlsError(
            f"{cert} / {key}: not a usable PEM certificate and key ({exc.reason})"
        ) from None


def client_context(
    *,
    ca: Path | None = None,
    client_cert: Path | None = None,
    client_key: Path | None = None,
    verify: bool = True,
) -> ssl.SSLContext:
    """The context for an https upstream: verified against the system store or ``ca``, with an
    optional client certificate (mTLS); SNI and hostname checks come from the URL's host."""
    context = ssl.create_default_context(ssl.Purpose.SERVER_AUTH)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    if not verify:
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    if ca is not None:
        try:
            context.load_verify_locations(cafile=ca)
        except (OSError, ssl.SSLError) as exc:
            raise TlsError(f"{ca}: not a readable PEM CA bundle ({exc})") from None
    if client_cert is not None:
        try:
            context.load_cert_chain(client_cert, client_key)
        except (OSError, ssl.SSLError) as exc:
            raise TlsError(f"{client_cert}: client certificate not usable ({exc})") from None
    return context
