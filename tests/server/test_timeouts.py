"""Half-sent requests are timed out (hardening issue, item 5), through raw sockets.

Before, 200 of 200 half-sent requests were still open after 75 s. Now a connection has
``server.header_timeout`` seconds to send its first request's headers, an idle keep-alive
connection ``server.keepalive_timeout`` seconds, and a body ``server.body_timeout`` seconds.
"""

from __future__ import annotations

import asyncio
import contextlib
from pathlib import Path

from tests.helpers.served import API_KEY, hardened_settings, port_of, served

PARTIAL_HEADERS = b"GET /events HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: "


async def _closed_within(reader: asyncio.StreamReader, within: float) -> bytes:
    """Everything the server sends until it closes the connection, or TimeoutError."""
    received = b""
    async with asyncio.timeout(within):
        while chunk := await reader.read(65536):
            received += chunk
    return received


async def _connect(port: int) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    return await asyncio.open_connection("127.0.0.1", port)


def _close(writer: asyncio.StreamWriter) -> None:
    with contextlib.suppress(ConnectionError, RuntimeError):
        writer.close()


class TestHeaderDeadline:
    async def test_a_silent_connection_is_closed(self, tmp_path: Path) -> None:
        """A connection that never sends a byte is closed after header_timeout."""
        settings = hardened_settings(tmp_path, header_timeout=0.3, keepalive_timeout=30)
        async with served(settings) as (url, _):
            reader, writer = await _connect(port_of(url))
            try:
                assert await _closed_within(reader, 5.0) == b""
            finally:
                _close(writer)

    async def test_trickled_headers_are_cut_off(self, tmp_path: Path) -> None:
        """Headers trickled a byte at a time (slowloris) never complete: the connection is
        closed after header_timeout although bytes keep coming."""
        settings = hardened_settings(tmp_path, header_timeout=0.5, keepalive_timeout=30)
        async with served(settings) as (url, _):
            reader, writer = await _connect(port_of(url))
            loop = asyncio.get_running_loop()
            started = loop.time()
            try:
                writer.write(PARTIAL_HEADERS)

                async def _trickle() -> None:
                    for _ in range(100):  # bounded: 10 s at most
                        await asyncio.sleep(0.1)
                        writer.write(b"a")

                trickle = asyncio.create_task(_trickle())
                try:
                    assert await _closed_within(reader, 5.0) == b""
                finally:
                    trickle.cancel()
                    with contextlib.suppress(asyncio.CancelledError, ConnectionError):
                        await trickle
                assert loop.time() - started < 5.0
            finally:
                _close(writer)

    async def test_two_hundred_half_sent_requests_are_all_closed(self, tmp_path: Path) -> None:
        """200 connections each holding a partial request are all closed within the bound."""
        settings = hardened_settings(tmp_path, header_timeout=0.5, keepalive_timeout=30)
        async with served(settings) as (url, _):
            connections = [await _connect(port_of(url)) for _ in range(200)]
            try:
                for _, writer in connections:
                    writer.write(PARTIAL_HEADERS)
                results = await asyncio.gather(
                    *(_closed_within(reader, 10.0) for reader, _ in connections),
                    return_exceptions=True,
                )
            finally:
                for _, writer in connections:
                    _close(writer)
            assert results == [b""] * 200

    async def test_a_complete_request_is_served(self, tmp_path: Path) -> None:
        """A request whose headers arrive in time is answered normally."""
        settings = hardened_settings(tmp_path, header_timeout=0.5)
        async with served(settings) as (url, _):
            reader, writer = await _connect(port_of(url))
            try:
                writer.write(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n")
                await asyncio.sleep(0.1)  # sent in two parts
                writer.write(b"Connection: close\r\n\r\n")
                received = await _closed_within(reader, 5.0)
            finally:
                _close(writer)
            assert received.startswith(b"HTTP/1.1 200")


class TestKeepAlive:
    async def test_an_idle_keep_alive_connection_is_closed(self, tmp_path: Path) -> None:
        """After a response, a kept-alive connection that stays idle is closed after
        keepalive_timeout."""
        settings = hardened_settings(tmp_path, header_timeout=30, keepalive_timeout=0.5)
        async with served(settings) as (url, _):
            reader, writer = await _connect(port_of(url))
            try:
                writer.write(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
                received = await _closed_within(reader, 5.0)
            finally:
                _close(writer)
            assert received.startswith(b"HTTP/1.1 200")

    async def test_a_half_sent_second_request_is_closed(self, tmp_path: Path) -> None:
        """A second request on a kept-alive connection that never completes its headers is
        closed after keepalive_timeout."""
        settings = hardened_settings(tmp_path, header_timeout=30, keepalive_timeout=0.5)
        async with served(settings) as (url, _):
            reader, writer = await _connect(port_of(url))
            try:
                writer.write(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n" + PARTIAL_HEADERS)
                received = await _closed_within(reader, 5.0)
            finally:
                _close(writer)
            assert received.count(b"HTTP/1.1 ") == 1


class TestBody:
    async def test_a_half_sent_body_is_a_408_and_closed(self, tmp_path: Path) -> None:
        """A body that stops halfway is answered 408 naming server.body_timeout, then closed."""
        settings = hardened_settings(tmp_path, body_timeout=0.5)
        async with served(settings) as (url, _):
            reader, writer = await _connect(port_of(url))
            try:
                writer.write(
                    b"POST /events HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                    + f"Authorization: Bearer {API_KEY}\r\n".encode()
                    + b"Content-Type: application/json\r\nContent-Length: 100\r\n\r\n"
                    + b'{"type": "memory.'
                )
                received = await _closed_within(reader, 5.0)
            finally:
                _close(writer)
            assert received.startswith(b"HTTP/1.1 408")
            assert b"server.body_timeout" in received
