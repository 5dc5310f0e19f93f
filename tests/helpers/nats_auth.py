"""A real ``nats-server`` started from a configuration file: users, passwords, permissions.

Built on :mod:`tests.helpers.nats` (the same binary, port choice and readiness check); the
configuration is written as JSON, which the NATS configuration format accepts::

    users = {"webhooks": NatsUser("pw1"), "reader": NatsUser("pw2", publish=[...], subscribe=[...])}
    with AuthNatsServer(tmp_path / "js", users) as server:
        nc = await nats.connect(server.url_for("reader"))

A user without ``publish``/``subscribe`` lists may publish and subscribe to everything.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from typing import Any

from tests.helpers.nats import NatsServer, nats_server_binary

__all__ = ["AuthNatsServer", "NatsUser"]


@dataclass(frozen=True)
class NatsUser:
    """One user of the server: a password and, if given, the subjects it may use."""

    password: str
    publish: list[str] | None = None
    """Subjects the user may publish to (``None``: all)."""
    subscribe: list[str] | None = None
    """Subjects the user may subscribe to (``None``: all)."""
    extra: dict[str, Any] = field(default_factory=dict)

    def entry(self, name: str) -> dict[str, Any]:
        """The user's entry in the configuration's ``authorization.users`` list."""
        permissions: dict[str, Any] = {}
        if self.publish is not None:
            permissions["publish"] = {"allow": self.publish}
        if self.subscribe is not None:
            permissions["subscribe"] = {"allow": self.subscribe}
        entry: dict[str, Any] = {"user": name, "password": self.password, **self.extra}
        if permissions:
            entry["permissions"] = permissions
        return entry


class AuthNatsServer(NatsServer):
    """A :class:`NatsServer` run with ``-c <config>``: JetStream (file storage in
    ``store_dir``) and the given users; ``restart()`` keeps port, store and users."""

    def __init__(
        self,
        store_dir: str | os.PathLike[str],
        users: dict[str, NatsUser],
        port: int | None = None,
    ) -> None:
        super().__init__(store_dir, port)
        self.users = users
        self.config_path = self.store_dir.parent / f"nats-server-{self.port}.conf"

    def url_for(self, user: str) -> str:
        """``nats://user:password@127.0.0.1:<port>`` for one of the users."""
        return f"nats://{user}:{self.users[user].password}@127.0.0.1:{self.port}"

    def config(self) -> dict[str, Any]:
        """The server configuration written to :attr:`config_path`."""
        return {
            "listen": f"127.0.0.1:{self.port}",
            "jetstream": {"store_dir": str(self.store_dir)},
            "authorization": {"users": [user.entry(n) for n, user in self.users.items()]},
        }

    def command(self) -> list[str]:
        """Write the configuration (readable by its owner only), and run the server with it."""
        self.config_path.write_text(json.dumps(self.config(), indent=2))
        os.chmod(self.config_path, 0o600)
        return [nats_server_binary(), "-c", str(self.config_path)]
