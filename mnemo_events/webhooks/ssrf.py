"""The server-side request forgery guard: which addresses a webhook may reach.

A webhook URL must be ``http`` or ``https`` and, unless private networks are allowed, its host
must be (or resolve only to) public addresses. The policy (:func:`address_problem`) is a pure
function over one IP address. :class:`GuardedResolver` applies it inside aiohttp's connector:
the connector connects to exactly the addresses the resolver returned, so the vetted IP is the
one used and DNS cannot change between the check and the connection. IP-literal hosts skip
resolvers in aiohttp, so the sender checks them with :func:`literal_host_problem`.

Numeric hosts are read the way ``inet_aton`` (and so ``getaddrinfo``) reads them before the
policy applies: ``2130706433``, ``0177.0.0.1``, ``0x7f.1`` and ``127.1`` are all 127.0.0.1
(:func:`numeric_ipv4`). A registered URL is stored with such a host written canonically.
"""

from __future__ import annotations

import asyncio
import ipaddress
import re
import socket
from typing import Final

from aiohttp.abc import AbstractResolver, ResolveResult
from yarl import URL

from mnemo_events.exceptions import UnsafeWebhookURLError, WebhookConfigError
from mnemo_events.webhooks.models import mask_url

__all__ = [
    "BlockedAddressError",
    "GuardedResolver",
    "address_problem",
    "blocked_message",
    "check_url",
    "literal_host_problem",
    "numeric_ipv4",
    "parse_webhook_url",
    "vet_url",
]

_IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

_V4_BLOCKS: Final = tuple(
    (ipaddress.IPv4Network(net), why)
    for net, why in (
        ("0.0.0.0/8", "unspecified ('this network')"),
        ("10.0.0.0/8", "private (RFC 1918)"),
        ("100.64.0.0/10", "carrier-grade NAT (RFC 6598)"),
        ("127.0.0.0/8", "loopback"),
        ("169.254.0.0/16", "link-local (where cloud metadata services live)"),
        ("172.16.0.0/12", "private (RFC 1918)"),
        ("192.0.0.0/24", "IETF protocol assignment"),
        ("192.0.2.0/24", "documentation (TEST-NET-1)"),
        ("192.168.0.0/16", "private (RFC 1918)"),
        ("198.18.0.0/15", "benchmarking"),
        ("198.51.100.0/24", "documentation (TEST-NET-2)"),
        ("203.0.113.0/24", "documentation (TEST-NET-3)"),
        ("224.0.0.0/4", "multicast"),
        ("240.0.0.0/4", "reserved"),
    )
)
_V6_BLOCKS: Final = tuple(
    (ipaddress.IPv6Network(net), why)
    for net, why in (
        ("::/128", "unspecified"),
        ("::1/128", "loopback"),
        ("::/96", "IPv4-compatible (deprecated)"),
        ("64:ff9b:1::/48", "local-use NAT64"),
        ("100::/64", "discard-only"),
        ("2001::/32", "Teredo tunnel"),
        ("2001:db8::/32", "documentation"),
        ("fc00::/7", "unique local (private)"),
        ("fe80::/10", "link-local"),
        ("fec0::/10", "site-local (deprecated)"),
        ("ff00::/8", "multicast"),
    )
)
_NAT64: Final = ipaddress.IPv6Network("64:ff9b::/96")
# One part of a numeric IPv4 host as inet_aton reads it: hex (0x..), octal (0..), decimal.
_V4_PART: Final = re.compile(r"0[xX][0-9a-fA-F]+|0[0-7]*|[1-9][0-9]*")
_ALLOW_HINT: Final = (
    "pass allow_private_networks=True to WebhookManager "
    "(config: webhooks.allow_private_networks: true) to allow it, e.g. for local development"
)


def _embedded_v4(address: ipaddress.IPv6Address) -> tuple[ipaddress.IPv4Address, str] | None:
    if address.ipv4_mapped is not None:
        return address.ipv4_mapped, "IPv4-mapped"
    if address.sixtofour is not None:
        return address.sixtofour, "6to4"
    if address in _NAT64:
        return ipaddress.IPv4Address(int(address) & 0xFFFFFFFF), "NAT64"
    return None


def address_problem(address: str | _IPAddress) -> str | None:
    """Why ``address`` must not be reached (``"loopback"``, ...), or ``None`` if it is public.

    Refused: loopback, RFC 1918 and unique-local private ranges, link-local (cloud metadata),
    carrier-grade NAT, multicast, unspecified, documentation, benchmarking and reserved ranges,
    and IPv6 forms that embed such an IPv4 address (IPv4-mapped, 6to4, NAT64). A string that
    is not an IP address is refused too.
    """
    try:
        ip = ipaddress.ip_address(address) if isinstance(address, str) else address
    except ValueError:
        return "not an IP address"
    if isinstance(ip, ipaddress.IPv6Address):
        if ip.scope_id:
            return "link-local (scoped)"
        embedded = _embedded_v4(ip)
        if embedded is not None:
            inner, form = embedded
            why = address_problem(inner)
            return None if why is None else f"{form} {why}"
        for network, why in _V6_BLOCKS:
            if ip in network:
                return why
    else:
        if ip == ipaddress.IPv4Address("255.255.255.255"):
            return "broadcast"
        for network4, why in _V4_BLOCKS:
            if ip in network4:
                return why
    if not ip.is_global:
        return "non-public"
    return None


def blocked_message(url: str, host: str, address: str, problem: str) -> str:
    """The refusal message: what was refused, why, and how to allow it."""
    verb = "is" if host == address else f"resolves to {address}, which is"
    return (
        f"webhook URL {mask_url(url)!r} refused: host {host!r} {verb} a {problem} address, "
        f"refused to prevent server-side request forgery; {_ALLOW_HINT}"
    )


def numeric_ipv4(host: str) -> ipaddress.IPv4Address | None:
    """The IPv4 address a numeric host names, read as ``inet_aton`` reads it, or ``None``.

    One to four dot-separated parts, each decimal, octal (leading ``0``) or hex (``0x``); the
    last part fills the remaining bytes: ``127.1`` is 127.0.0.1, ``2130706433`` and
    ``0x7f000001`` too. Unlike the C function, trailing text (``"127.1 x"``) is not a number.
    """
    parts = host.split(".")
    if not 1 <= len(parts) <= 4 or not all(_V4_PART.fullmatch(part) for part in parts):
        return None
    values = [
        int(part, 0) if part[:2].lower() == "0x" else int(part, 8 if part[0] == "0" else 10)
        for part in parts
    ]
    *head, last = values
    if any(value > 0xFF for value in head) or last >= 1 << (8 * (5 - len(parts))):
        return None
    number = last
    for index, value in enumerate(head):
        number |= value << (8 * (3 - index))
    return ipaddress.IPv4Address(number)


def _literal(host: str) -> _IPAddress | None:
    """The address an IP-literal host names (any numeric IPv4 form, or bracketed IPv6)."""
    bare = host[1:-1] if host.startswith("[") and host.endswith("]") else host
    try:
        return ipaddress.ip_address(bare)
    except ValueError:
        return numeric_ipv4(bare)


def _canonical(parsed: URL) -> URL:
    """``parsed`` with a numeric IPv4 host written as a dotted quad (``127.1`` -> 127.0.0.1)."""
    host = parsed.raw_host or ""
    ip = _literal(host)
    if isinstance(ip, ipaddress.IPv4Address) and str(ip) != host:
        return parsed.with_host(str(ip))
    return parsed


def parse_webhook_url(url: str) -> URL:
    """Parse a webhook URL, accepting only absolute ``http``/``https`` URLs with a host.

    A numeric IPv4 host in a legacy form (``2130706433``, ``0177.0.0.1``, ``127.1``) comes
    back as the dotted quad it means, so what is checked and stored is what is reached.

    Raises:
        WebhookConfigError: the message names the URL and what is wrong with it.
    """
    if not isinstance(url, str) or not url.strip():
        shown = mask_url(url) if isinstance(url, str) else url
        raise WebhookConfigError(f"webhook url must be a non-empty string, got {shown!r}")
    try:
        parsed = URL(url.strip())
    except (ValueError, TypeError) as err:
        detail = "" if "@" in url else f": {err}"  # the error may echo a password
        raise WebhookConfigError(
            f"webhook url {mask_url(url)!r} is not a valid URL{detail}"
        ) from None
    if parsed.scheme not in ("http", "https"):
        raise WebhookConfigError(
            f"webhook url {mask_url(url)!r} must use http or https, "
            f"not {parsed.scheme or '(none)'!r}"
        )
    if not parsed.raw_host:
        raise WebhookConfigError(f"webhook url {mask_url(url)!r} has no host")
    if parsed.fragment:
        raise WebhookConfigError(f"webhook url {mask_url(url)!r} must not have a #fragment")
    return _canonical(parsed)


def literal_host_problem(url: URL) -> str | None:
    """The refusal message for a URL whose host is a blocked IP literal, else ``None``.

    Numeric hosts in any ``inet_aton`` form count as literals; a host with a ``:`` that is
    not a valid IPv6 address is refused (the socket layer would take it as one).
    """
    host = url.raw_host or ""
    ip = _literal(host)
    if ip is None:
        if ":" not in host:
            return None
        return blocked_message(str(url), host, host, "malformed IPv6")
    problem = address_problem(ip)
    return None if problem is None else blocked_message(str(url), host, str(ip), problem)


async def check_url(
    url: str,
    *,
    allow_private_networks: bool,
    resolver: AbstractResolver | None,
    resolve_timeout: float = 5.0,
) -> URL:
    """Validate a webhook URL at registration: syntax, then the address policy.

    A host name is resolved for IPv4 and IPv6 (``AF_UNSPEC``); every address it resolves to
    must be public. A name that does not resolve (yet), or whose lookup times out, is accepted:
    it is checked again at connection.

    Raises:
        WebhookConfigError: the URL is malformed or not http(s).
        UnsafeWebhookURLError: the host is, or resolves to, a refused address.
    """
    parsed = parse_webhook_url(url)
    if allow_private_networks:
        return parsed
    literal = literal_host_problem(parsed)
    if literal is not None:
        raise UnsafeWebhookURLError(literal)
    if _literal(parsed.raw_host or "") is not None or resolver is None:
        return parsed
    try:
        async with asyncio.timeout(resolve_timeout):
            results = await resolver.resolve(
                parsed.raw_host or "", parsed.port or 0, family=socket.AF_UNSPEC
            )
    except (OSError, TimeoutError):
        return parsed
    message = _first_blocked(str(parsed), results)
    if message is not None:
        raise UnsafeWebhookURLError(message)
    return parsed


async def vet_url(
    url: str, *, allow_private_networks: bool, resolver: AbstractResolver | None
) -> URL:
    """:func:`check_url` with aiohttp's default resolver when none is given (closed after)."""
    if resolver is not None or allow_private_networks:
        return await check_url(
            url, allow_private_networks=allow_private_networks, resolver=resolver
        )
    from aiohttp.resolver import DefaultResolver

    default = DefaultResolver()
    try:
        return await check_url(url, allow_private_networks=False, resolver=default)
    finally:
        await default.close()


def _first_blocked(url: str, results: list[ResolveResult]) -> str | None:
    for result in results:
        problem = address_problem(result["host"])
        if problem is not None:
            return blocked_message(url, result["hostname"], result["host"], problem)
    return None


class BlockedAddressError(OSError):
    """A host resolved to a refused address at connection time (the attempt is not retried).

    An ``OSError`` because aiohttp wraps resolver ``OSError``\\ s into its connection errors;
    the sender finds it again as the ``__cause__``.
    """


class GuardedResolver(AbstractResolver):
    """A resolver that refuses answers containing any non-public address.

    Wraps another resolver (aiohttp's default when none is given). A mixed answer (one public,
    one private address) is refused whole: it is the shape of a DNS-rebinding attempt. A
    numeric host (``0x7f.1``, which aiohttp hands to resolvers) is read here as ``inet_aton``
    reads it, checked, and answered with that address, whatever the wrapped resolver would do.
    """

    def __init__(self, inner: AbstractResolver | None = None) -> None:
        self._inner = inner

    def _resolver(self) -> AbstractResolver:
        if self._inner is None:
            from aiohttp.resolver import DefaultResolver

            self._inner = DefaultResolver()
        return self._inner

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        """Resolve ``host`` and refuse the answer if any address is not public."""
        shown = f"{host}:{port}" if port else host
        numeric = numeric_ipv4(host)
        if numeric is not None:
            results = [
                ResolveResult(
                    hostname=host,
                    host=str(numeric),
                    port=port,
                    family=socket.AF_INET,
                    proto=0,
                    flags=socket.AI_NUMERICHOST,
                )
            ]
        else:
            results = await self._resolver().resolve(host, port, family)
        message = _first_blocked(shown, results)
        if message is not None:
            raise BlockedAddressError(message)
        return results

    async def close(self) -> None:
        """Close the wrapped resolver."""
        if self._inner is not None:
            await self._inner.close()
