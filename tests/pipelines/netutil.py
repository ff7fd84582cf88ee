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
