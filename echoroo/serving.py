"""Where `manage.py serve` is reached: its bind address, this machine's names and addresses, the hosts it answers to."""

from __future__ import annotations

import ipaddress
import socket
from dataclasses import dataclass

LOOPBACK_HOSTS = ["127.0.0.1", "localhost", "[::1]"]
EVERY_INTERFACE = {"", "0.0.0.0", "::"}


@dataclass(frozen=True)
class Bind:
    """gunicorn's --bind: HOST:PORT, [IPv6]:PORT, or unix:PATH (a proxy's socket: no host names to add)."""

    host: str | None
    port: int | None

    @classmethod
    def parse(cls, bind: str) -> Bind:
        if bind.startswith(("unix:", "fd://")):
            return cls(None, None)
        if bind.startswith("["):
            host, _, rest = bind[1:].partition("]")
            port = rest.removeprefix(":")
        elif bind.count(":") == 1:
            host, port = bind.split(":")
        elif ":" in bind:  # a bare IPv6 address
            host, port = bind, ""
        else:
            host, port = bind, ""
        try:
            number = int(port or 8000)
        except ValueError:
            number = 0
        if not 0 < number < 65536:
            raise ValueError(f"--bind {bind!r}: the port must be a number from 1 to 65535 (e.g. 0.0.0.0:8000)")
        return cls(host, number)

    @property
    def every_interface(self) -> bool:
        return self.host in EVERY_INTERFACE

    @property
    def loopback_only(self) -> bool:
        if self.host is None:
            return False
        if self.host == "localhost":
            return True
        try:
            return ipaddress.ip_address(self.host).is_loopback
        except ValueError:
            return False

    def local_url(self) -> str:
        if self.host is None:
            return "the socket given to --bind"
        host = "127.0.0.1" if self.every_interface else url_host(self.host)
        return f"http://{host}:{self.port}/"


def url_host(address: str) -> str:
    """An address as a URL and a Host header write it: IPv6 in brackets."""
    return f"[{address}]" if ":" in address else address


def machine_addresses() -> list[str]:
    """This machine's IP addresses other machines can use (no loopback, no IPv6 link-local)."""
    import psutil

    found = []
    for addresses in psutil.net_if_addrs().values():
        for address in addresses:
            if address.family not in (socket.AF_INET, socket.AF_INET6):
                continue
            ip = ipaddress.ip_address(address.address.split("%")[0])
            if not (ip.is_loopback or ip.is_link_local):
                found.append(str(ip))
    return sorted(set(found), key=lambda text: (":" in text, text))


def machine_names() -> list[str]:
    return list(dict.fromkeys(name for name in (socket.gethostname(), socket.getfqdn()) if name))


def accepted_hosts(bind: Bind, configured: list[str]) -> list[str] | None:
    """ALLOWED_HOSTS for a server bound to `bind`: the configured ones plus the names and addresses it is reached at
    (every interface: this machine's names and addresses); None when nothing needs adding."""
    if bind.host is None or "*" in configured:
        return None
    if bind.every_interface:
        extra = LOOPBACK_HOSTS + machine_names() + [url_host(address) for address in machine_addresses()]
    elif bind.loopback_only:
        extra = LOOPBACK_HOSTS
    else:
        extra = [url_host(bind.host), *machine_names()]
    hosts = list(dict.fromkeys([*configured, *extra]))
    return None if hosts == configured else hosts


def other_machines_urls(bind: Bind) -> list[str]:
    """The addresses other machines reach the server at (none when it listens on loopback only)."""
    if bind.host is None or bind.loopback_only:
        return []
    hosts = machine_addresses() if bind.every_interface else [bind.host]
    return [f"http://{url_host(host)}:{bind.port}/" for host in hosts]
