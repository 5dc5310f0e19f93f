"""Tests of the SSRF guard: the address table, URL checks and the connection-time resolver."""

from __future__ import annotations

import random
import socket

import pytest
from aiohttp.abc import AbstractResolver, ResolveResult
from yarl import URL

from mnemo_events.exceptions import UnsafeWebhookURLError, WebhookConfigError
from mnemo_events.webhooks.ssrf import (
    BlockedAddressError,
    GuardedResolver,
    address_problem,
    check_url,
    literal_host_problem,
    numeric_ipv4,
    parse_webhook_url,
)
from tests.helpers.receiver import StaticResolver

BLOCKED = [
    ("127.0.0.1", "loopback"),
    ("127.255.0.9", "loopback"),
    ("10.1.2.3", "private"),
    ("172.16.0.1", "private"),
    ("172.31.255.255", "private"),
    ("192.168.1.1", "private"),
    ("169.254.169.254", "link-local"),
    ("100.64.0.1", "carrier-grade NAT"),
    ("100.127.255.254", "carrier-grade NAT"),
    ("0.0.0.0", "unspecified"),
    ("224.0.0.1", "multicast"),
    ("239.255.255.250", "multicast"),
    ("255.255.255.255", "broadcast"),
    ("240.0.0.1", "reserved"),
    ("192.0.2.10", "documentation"),
    ("198.18.0.1", "benchmarking"),
    ("::1", "loopback"),
    ("::", "unspecified"),
    ("fe80::1", "link-local"),
    ("fc00::1", "unique local"),
    ("fd12:3456::1", "unique local"),
    ("ff02::1", "multicast"),
    ("::ffff:127.0.0.1", "IPv4-mapped loopback"),
    ("::ffff:10.0.0.1", "IPv4-mapped private"),
    ("::ffff:169.254.169.254", "IPv4-mapped link-local"),
    ("2002:7f00:1::", "6to4 loopback"),
    ("2002:c0a8:101::", "6to4 private"),
    ("64:ff9b::a9fe:a9fe", "NAT64 link-local"),
    ("64:ff9b:1::1", "local-use NAT64"),
    ("2001:db8::1", "documentation"),
    ("2001::1", "Teredo"),
    ("::127.0.0.1", "IPv4-compatible"),
    ("not-an-ip", "not an IP address"),
]
ALLOWED = [
    "8.8.8.8",
    "1.1.1.1",
    "93.184.216.34",
    "100.128.0.1",
    "172.32.0.1",
    "2606:4700:4700::1111",
    "::ffff:8.8.8.8",
    "2002:0808:0808::1",
    "64:ff9b::808:808",
]


class TestAddressPolicy:
    @pytest.mark.parametrize(("address", "reason"), BLOCKED)
    def test_blocked(self, address: str, reason: str) -> None:
        """Each non-public address is refused with a reason naming its kind."""
        problem = address_problem(address)
        assert problem is not None
        assert reason in problem

    @pytest.mark.parametrize("address", ALLOWED)
    def test_allowed(self, address: str) -> None:
        """Public addresses, also embedded in IPv6 forms, pass."""
        assert address_problem(address) is None


class TestParseUrl:
    @pytest.mark.parametrize(
        ("url", "message"),
        [
            ("ftp://example.com/x", "http or https"),
            ("file:///etc/passwd", "http or https"),
            ("example.com/hook", "http or https"),
            ("http:///nohost", "no host"),
            ("", "non-empty"),
            ("https://example.com/x#frag", "fragment"),
        ],
    )
    def test_refused(self, url: str, message: str) -> None:
        """Only absolute http(s) URLs with a host are webhook URLs."""
        with pytest.raises(WebhookConfigError, match=message):
            parse_webhook_url(url)

    def test_accepted(self) -> None:
        """An https URL with a path and query parses."""
        assert str(parse_webhook_url("https://hooks.example.com/a?b=1")).endswith("/a?b=1")


class TestCheckUrl:
    @pytest.mark.parametrize(
        "url",
        [
            "http://127.0.0.1:8080/hook",
            "http://[::1]/hook",
            "http://169.254.169.254/latest/meta-data",
            "http://[::ffff:10.0.0.1]/",
        ],
    )
    async def test_literal_private_hosts_are_refused(self, url: str) -> None:
        """A private IP literal is refused, saying why and how to allow it."""
        with pytest.raises(UnsafeWebhookURLError, match="allow_private_networks"):
            await check_url(url, allow_private_networks=False, resolver=None)

    async def test_names_resolving_to_private_addresses_are_refused(self) -> None:
        """A name is refused when any address it resolves to is private."""
        dns = StaticResolver({"internal.test": ["8.8.8.8", "10.0.0.5"]})
        with pytest.raises(UnsafeWebhookURLError, match=r"resolves to 10\.0\.0\.5.*private"):
            await check_url("https://internal.test/h", allow_private_networks=False, resolver=dns)

    async def test_public_names_pass(self) -> None:
        """A name resolving only to public addresses is accepted."""
        dns = StaticResolver({"hooks.test": ["93.184.216.34"]})
        url = await check_url("https://hooks.test/h", allow_private_networks=False, resolver=dns)
        assert url.host == "hooks.test"

    async def test_unresolvable_names_are_accepted_for_later(self) -> None:
        """A name that does not resolve yet is accepted (it is checked when connecting)."""
        dns = StaticResolver({})
        await check_url("https://later.test/h", allow_private_networks=False, resolver=dns)

    async def test_real_localhost_is_refused(self) -> None:
        """'localhost' through the system resolver is refused as loopback."""
        from aiohttp.resolver import ThreadedResolver

        dns = ThreadedResolver()
        with pytest.raises(UnsafeWebhookURLError, match="loopback"):
            await check_url("http://localhost:9/h", allow_private_networks=False, resolver=dns)

    async def test_allow_private_networks_skips_the_policy(self) -> None:
        """With private networks allowed, loopback URLs pass (but the scheme is still checked)."""
        await check_url("http://127.0.0.1/h", allow_private_networks=True, resolver=None)
        with pytest.raises(WebhookConfigError):
            await check_url("gopher://127.0.0.1/", allow_private_networks=True, resolver=None)


class TestGuardedResolver:
    async def test_refuses_private_answers(self) -> None:
        """At connection time a private answer raises BlockedAddressError (an OSError)."""
        guard = GuardedResolver(StaticResolver({"rebind.test": ["127.0.0.1"]}))
        with pytest.raises(BlockedAddressError, match="loopback"):
            await guard.resolve("rebind.test", 443)

    async def test_refuses_mixed_answers(self) -> None:
        """One private address among public ones refuses the whole answer."""
        guard = GuardedResolver(StaticResolver({"mixed.test": ["8.8.8.8", "::1"]}))
        with pytest.raises(BlockedAddressError):
            await guard.resolve("mixed.test", 443)

    async def test_passes_public_answers_unchanged(self) -> None:
        """Public answers are returned as resolved, so the connector uses the vetted IPs."""
        inner = StaticResolver({"ok.test": ["8.8.8.8", "8.8.4.4"]})
        guard = GuardedResolver(inner)
        results = await guard.resolve("ok.test", 443)
        assert [r["host"] for r in results] == ["8.8.8.8", "8.8.4.4"]
        await guard.close()
        assert inner.closed


class FamilyResolver(AbstractResolver):
    """A DNS stand-in that answers only the address families asked for (as real DNS does)."""

    def __init__(self, table: dict[str, list[str]]) -> None:
        self.table = table
        self.families: list[socket.AddressFamily] = []

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        self.families.append(family)
        wanted = {
            socket.AF_INET: (socket.AF_INET,),
            socket.AF_INET6: (socket.AF_INET6,),
        }.get(family, (socket.AF_INET, socket.AF_INET6))
        found = [
            ResolveResult(
                hostname=host,
                host=ip,
                port=port,
                family=socket.AF_INET6 if ":" in ip else socket.AF_INET,
                proto=0,
                flags=0,
            )
            for ip in self.table.get(host, [])
            if (socket.AF_INET6 if ":" in ip else socket.AF_INET) in wanted
        ]
        if not found:
            raise OSError(f"{host} has no address of family {family!r}")
        return found

    async def close(self) -> None:
        pass


# The exact inputs of issue 11, item 1, and hex forms of the same address.
NUMERIC_LOOPBACK = ["2130706433", "0177.0.0.1", "127.1", "0x7f.1", "0x7f000001", "0X7F.0.0.01"]


class TestNumericHosts:
    @pytest.mark.parametrize(
        ("host", "address"),
        [
            ("2130706433", "127.0.0.1"),
            ("0177.0.0.1", "127.0.0.1"),
            ("127.1", "127.0.0.1"),
            ("0x7f.1", "127.0.0.1"),
            ("127.0.1", "127.0.0.1"),
            ("0xa9fea9fe", "169.254.169.254"),
            ("10.1", "10.0.0.1"),
            ("0", "0.0.0.0"),
            ("4294967295", "255.255.255.255"),
            ("8.8.8.8", "8.8.8.8"),
        ],
    )
    def test_read_as_inet_aton_reads_them(self, host: str, address: str) -> None:
        """Decimal, octal, hex and short forms name the address inet_aton gives them."""
        assert str(numeric_ipv4(host)) == address
        assert socket.inet_ntoa(socket.inet_aton(host)) == address

    @pytest.mark.parametrize(
        "host",
        ["4294967296", "08.0.0.1", "0x", "1.2.3.4.5", "1.2.3.256", "1.2.65536", "127.1.", "a.b"],
    )
    def test_non_numbers_are_not_addresses(self, host: str) -> None:
        """What inet_aton refuses is not read as an address either (it is a name)."""
        assert numeric_ipv4(host) is None
        with pytest.raises(OSError, match="illegal"):
            socket.inet_aton(host)

    def test_agrees_with_inet_aton_on_a_corpus(self) -> None:
        """On 20,000 strings of digits, dots and hex letters, both readings agree exactly."""
        rng = random.Random(11)
        alphabet = "0123456789xXabcdefABCDEF."
        for _ in range(20_000):
            host = "".join(rng.choice(alphabet) for _ in range(rng.randint(1, 14)))
            try:
                expected: str | None = socket.inet_ntoa(socket.inet_aton(host))
            except OSError:
                expected = None
            got = numeric_ipv4(host)
            assert (None if got is None else str(got)) == expected, host

    @pytest.mark.parametrize("host", NUMERIC_LOOPBACK)
    async def test_refused_at_registration(self, host: str) -> None:
        """`http://2130706433:PORT/` and its kin are refused as loopback with the policy on."""
        with pytest.raises(UnsafeWebhookURLError, match="loopback"):
            await check_url(f"http://{host}:8080/", allow_private_networks=False, resolver=None)

    @pytest.mark.parametrize("host", NUMERIC_LOOPBACK)
    def test_refused_at_connect_time(self, host: str) -> None:
        """The sender's literal check reads the same forms, for URLs that skipped registration."""
        problem = literal_host_problem(URL(f"http://{host}:8080/hook"))
        assert problem is not None
        assert "loopback" in problem

    @pytest.mark.parametrize("host", NUMERIC_LOOPBACK)
    async def test_guarded_resolver_answers_numeric_hosts_itself(self, host: str) -> None:
        """A numeric host reaching the resolver is read, checked, and never passed on."""
        inner = StaticResolver({host: ["93.184.216.34"]})  # a resolver that would lie
        with pytest.raises(BlockedAddressError, match="loopback"):
            await GuardedResolver(inner).resolve(host, 80)
        public = await GuardedResolver(inner).resolve("0x08.0x08.0x08.0x08", 80)
        assert [r["host"] for r in public] == ["8.8.8.8"]

    async def test_stored_canonically_when_private_networks_are_allowed(self) -> None:
        """With the policy off the URL is kept, its host written as the dotted quad it means."""
        url = await check_url(
            "http://user:pw@0177.0.0.1:8080/h?x=1", allow_private_networks=True, resolver=None
        )
        assert str(url) == "http://user:pw@127.0.0.1:8080/h?x=1"

    def test_malformed_ipv6_hosts_are_refused_at_connect_time(self) -> None:
        """A host with a colon that is not IPv6 is refused rather than handed to the socket."""
        problem = literal_host_problem(URL("http://[::ffff:127.1]:80/"))
        assert problem is not None


class TestRegistrationLookup:
    async def test_names_resolving_only_to_ipv6_loopback_are_refused(self) -> None:
        """The registration lookup asks for IPv6 too: a name with only `::1` is refused."""
        dns = FamilyResolver({"six.test": ["::1"]})
        with pytest.raises(UnsafeWebhookURLError, match="loopback"):
            await check_url("https://six.test/h", allow_private_networks=False, resolver=dns)
        assert dns.families == [socket.AF_UNSPEC]

    async def test_private_ipv6_behind_a_public_ipv4_is_refused(self) -> None:
        """A public A record does not hide a private AAAA record."""
        dns = FamilyResolver({"dual.test": ["93.184.216.34", "fd00::1"]})
        with pytest.raises(UnsafeWebhookURLError, match="unique local"):
            await check_url("https://dual.test/h", allow_private_networks=False, resolver=dns)

    async def test_passwords_are_masked_in_refusals(self) -> None:
        """A refused URL's password is not echoed in the error."""
        with pytest.raises(UnsafeWebhookURLError) as caught:
            await check_url(
                "http://user:hunter2@127.1/", allow_private_networks=False, resolver=None
            )
        assert "hunter2" not in str(caught.value)
        assert "user:****@" in str(caught.value)
