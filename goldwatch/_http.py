"""httpx clients that never send loopback traffic through a proxy, and server error bodies reduced to one line.

A sidecar or a CI job often runs where ``HTTP_PROXY``/``HTTPS_PROXY`` are set for the outside world; httpx honours
them for every host not in ``NO_PROXY``, including ``127.0.0.1`` -- and a proxy cannot reach the inference server
next to goldwatch. :func:`client` keeps the environment's proxies (and certificates) for remote hosts and mounts a
direct transport for loopback: ``localhost``, ``127.0.0.1``, ``[::1]`` and the loopback hosts of the URLs it is
given (any 127.0.0.0/8 address).

>>> is_loopback("http://127.0.0.2:8080/v2"), is_loopback("http://localhost"), is_loopback("https://example.com")
(True, True, False)
>>> one_line("Traceback (most recent call last):\\n  File ...\\nValueError:   bad\\tinput  ")
'Traceback (most recent call last): File ... ValueError: bad input'
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

if TYPE_CHECKING:  # httpx is imported where a client is made: goldwatch.watchdog.registry stays free of it
    import httpx

__all__ = ["LOOPBACK_HOSTS", "client", "is_loopback", "loopback_mounts", "one_line"]

#: hosts always reached directly, whatever the environment's proxy settings
LOOPBACK_HOSTS = ("localhost", "127.0.0.1", "[::1]")


def is_loopback(url_or_host: str) -> bool:
    """Whether a URL's host (or a bare host) is this machine: ``localhost`` or a loopback address."""
    host = (urlsplit(url_or_host).hostname or "") if "://" in url_or_host else url_or_host
    host = host.strip("[]").lower()
    if host == "localhost" or host.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def loopback_mounts(urls: Iterable[str] = (), *, transport: httpx.BaseTransport | None = None,
                    ) -> dict[str, httpx.BaseTransport]:
    """httpx ``mounts`` sending loopback hosts (and those of ``urls``) straight to ``transport`` (default: a direct
    ``HTTPTransport`` that still honours the environment's certificate settings)."""
    import httpx

    direct = transport or httpx.HTTPTransport(trust_env=True)
    hosts = set(LOOPBACK_HOSTS)
    for url in urls:
        host = urlsplit(url).hostname
        if host and is_loopback(url):
            hosts.add(f"[{host}]" if ":" in host else host)
    return {f"all://{host}": direct for host in sorted(hosts)}


def client(*, urls: Iterable[str] = (), transport: httpx.BaseTransport | None = None, **kwargs: Any) -> httpx.Client:
    """An ``httpx.Client`` (``kwargs`` as usual) whose loopback requests never go through a proxy; ``urls`` names
    the servers it will talk to, so that any loopback address among them is covered. A given ``transport`` serves
    every request (loopback ones included)."""
    import httpx

    urls = list(urls)
    if "base_url" in kwargs:
        urls.append(str(kwargs["base_url"]))
    return httpx.Client(transport=transport, mounts=loopback_mounts(urls, transport=transport), **kwargs)


def one_line(text: str, *, limit: int = 300) -> str:
    """``text`` with every run of whitespace (newlines included) made one space, cut to ``limit`` characters: a
    server's error body quoted inside goldwatch's one-line error."""
    flat = " ".join(str(text).split())
    return flat if len(flat) <= limit else flat[: limit - 3] + "..."
