"""One HTTP(S) request on a fresh loopback connection, as the server tests make them."""

from __future__ import annotations

import http.client
import ssl


def request(
    port: int,
    method: str,
    path: str,
    body: bytes | None = None,
    *,
    context: ssl.SSLContext | None = None,
    timeout: float = 10,
) -> tuple[int, bytes]:
    """Send one JSON request to 127.0.0.1:``port`` (HTTPS when ``context`` is given); status and body."""
    connection = (
        http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
        if context is None
        else http.client.HTTPSConnection("127.0.0.1", port, context=context, timeout=timeout)
    )
    try:
        connection.request(method, path, body=body, headers={"Content-Type": "application/json"})
        response = connection.getresponse()
        return response.status, response.read()
    finally:
        connection.close()
