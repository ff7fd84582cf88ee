"""Helpers shared by the tests that run pipelines across processes on
127.0.0.1 (test_distributed.py, test_transport.py, test_net_scripts.py).
SPDX-License-Identifier: LGPL-2.1-or-later
"""
import json
import socket
import time


def free_port():
    """A TCP port on 127.0.0.1 that nothing uses now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_listening(port, timeout=10.0):
    """Waits until something listens on @port, without connecting (a
    tcpserversrc takes one client only): binding it then fails."""
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                return
        time.sleep(0.05)
    raise AssertionError(f"nothing listens on port {port}")


def read_jsonl(path):
    """mmpublish's JSON lines (one decision each) as a list of dicts."""
    with open(path) as f:
        return [json.loads(x) for x in f]


def free_udp_port():
    """A UDP port on 127.0.0.1 that nothing uses now (SRT runs on UDP)."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def udp_bound(port):
    """Whether some socket is bound to UDP @port (Linux: /proc/net/udp)."""
    for table in ("/proc/net/udp", "/proc/net/udp6"):
        try:
            with open(table) as f:
                rows = list(f)[1:]
        except OSError:
            continue
        if any(int(r.split()[1].rsplit(":", 1)[1], 16) == port for r in rows):
            return True
    return False


def wait_udp_bound(port, timeout=10.0):
    """Waits until an SRT listener (srtsrc mode=listener) has bound UDP
    @port.  Read from /proc rather than probed with bind(): a probe holding
    the port for a moment makes srtsrc's own bind fail."""
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if udp_bound(port):
            return
        time.sleep(0.05)
    raise AssertionError(f"nothing is bound to UDP port {port}")
