"""The gateway's CPU cost per request as a count of instructions, for before/after comparisons of
a change to the request path.

    python bench/cost.py                          # this checkout: every cost case, uvloop
    python bench/cost.py --compare HEAD~1         # and another revision, side by side
    python bench/cost.py --cases rs256 --loop asyncio --requests 1000

Why not req/s: on the shared VMs this project runs on, the same build's req/s moves by up to
1.7x from one minute to the next, more than most changes are worth. An instruction count does
not: the gateway runs under valgrind's callgrind, gets ``--warmup`` requests (caches filled,
pool connected), then its counters are zeroed, it answers ``--requests`` sequential keep-alive
requests from one connection, and the counters are dumped. Repeated runs of one build agree to
about 1.5%. What it does not see: the kernel's share (the syscalls themselves), and the
batching of a loaded server (one request per loop turn here). So it ranks changes to the
gateway's own code; `bench/run.py` remains the measure against the peers.

Needs valgrind (callgrind_control) and nginx (the upstream, as in bench/run.py); ``--compare``
needs git. The other revision is checked out in a temporary git worktree and imported from
there (``python -m gateway`` run in that directory); where it has setup.py's compiled build, its
wheel is built first and its extension modules put beside its sources, as an editable install
does (a minute or two).
"""

from __future__ import annotations

import argparse
import contextlib
import re
import shutil
import socket
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import run as bench
from gateway_build import build_name, compile_in_place, stale_build

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_CASES = ("rs256", "no_token_401", "no_scope_403")
_LENGTH = re.compile(rb"(?im)^content-length: *(\d+)\r?$")


def missing_tools() -> str | None:
    """Why the cost cannot be measured here, or None."""
    for tool in ("valgrind", "callgrind_control"):
        if shutil.which(tool) is None:
            return f"{tool} is not installed (apt-get install valgrind)"
    if shutil.which("nginx", path="/usr/sbin:/usr/bin") is None:
        return "nginx is not installed (apt-get install nginx-light)"
    return None


class KeepAliveClient:
    """Sequential requests on one connection; each answer read whole by its Content-Length."""

    def __init__(self, port: int, request: bytes) -> None:
        self._socket = socket.create_connection(("127.0.0.1", port), timeout=600)
        self._request = request
        self._buffer = b""

    def status(self) -> int:
        """Send the request once and return the answer's status."""
        self._socket.sendall(self._request)
        while True:
            end = self._buffer.find(b"\r\n\r\n")
            if end >= 0:
                head = self._buffer[:end]
                length = _LENGTH.search(head)
                total = end + 4 + (int(length.group(1)) if length else 0)
                if len(self._buffer) >= total:
                    self._buffer = self._buffer[total:]
                    return int(head[9:12])
            chunk = self._socket.recv(65536)
            if not chunk:
                raise ConnectionError("the gateway closed the connection")
            self._buffer += chunk

    def close(self) -> None:
        self._socket.close()


def request_bytes(case: bench.Case, token: str) -> bytes:
    lines = [f"{case.method} {case.path} HTTP/1.1", "Host: cost.test"]
    if token:
        lines.append(f"Authorization: Bearer {token}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


def instructions_per_request(
    tree: Path, workdir: Path, case: bench.Case, token: str, args: argparse.Namespace
) -> float:
    """Run the gateway of ``tree`` under callgrind and count the instructions of the measured
    requests (every thread; the totals of the dump taken after them)."""
    port = bench.free_port()
    out = workdir / f"callgrind.{port}"
    command = ["valgrind", "--tool=callgrind", f"--callgrind-out-file={out}"]
    command += bench.gateway_command(workdir, port, args.loop)
    # Run in the tree: `python -m` puts the working directory first on sys.path.
    gateway = subprocess.Popen(command, cwd=tree, stdout=subprocess.DEVNULL,
                               stderr=subprocess.DEVNULL)  # fmt: skip
    try:
        bench.wait_port(port, within=600)
        client = KeepAliveClient(port, request_bytes(case, token))
        for _ in range(args.warmup):
            client.status()
        pid = str(gateway.pid)
        subprocess.run(["callgrind_control", "--zero", pid], check=True, capture_output=True)
        statuses = {client.status() for _ in range(args.requests)}
        subprocess.run(["callgrind_control", "--dump", pid], check=True, capture_output=True)
        client.close()
        if statuses != {case.expected}:
            raise RuntimeError(f"{case.name}: expected {case.expected}, got {sorted(statuses)}")
    finally:
        gateway.terminate()
        gateway.wait(timeout=600)
    total = 0
    for dump in workdir.glob(f"callgrind.{port}.*"):  # the --dump parts, one per thread
        for line in dump.read_text().splitlines():
            if line.startswith(("summary:", "totals:")):
                total += int(line.split()[1])
                break
    return total / args.requests


@contextlib.contextmanager
def checked_out(revision: str) -> Iterator[Path]:
    """``revision`` in a temporary git worktree."""
    with tempfile.TemporaryDirectory(prefix="gateway-cost-") as parent:
        tree = Path(parent) / "tree"
        subprocess.run(["git", "-C", str(ROOT), "worktree", "add", "--detach", "--quiet",
                        str(tree), revision], check=True)  # fmt: skip
        try:
            compile_in_place(tree)
            yield tree
        finally:
            subprocess.run(["git", "-C", str(ROOT), "worktree", "remove", "--force", str(tree)],
                           check=False)  # fmt: skip


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--cases", default=",".join(DEFAULT_CASES),
                        help="comma-separated bench/run.py case names")  # fmt: skip
    parser.add_argument("--loop", default="uvloop", choices=("asyncio", "uvloop"))
    parser.add_argument("--requests", type=int, default=500)
    parser.add_argument("--warmup", type=int, default=100)
    parser.add_argument("--compare", metavar="REVISION", help="also measure this git revision")
    args = parser.parse_args()
    missing = missing_tools()
    if missing is not None:
        print(f"cannot measure: {missing}", file=sys.stderr)
        return 2
    by_name = {case.name: case for case in bench.CASES}
    unknown = [name for name in args.cases.split(",") if name not in by_name]
    if unknown:
        parser.error(f"unknown case {', '.join(unknown)}; known: {', '.join(by_name)}")
    cases = [by_name[name] for name in args.cases.split(",")]
    if why := stale_build(ROOT):
        print(f"cannot measure: {why}", file=sys.stderr)
        return 2
    with contextlib.ExitStack() as stack:
        trees = {"this checkout": ROOT}
        if args.compare:
            trees = {args.compare: stack.enter_context(checked_out(args.compare)), **trees}
        workdir = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="gateway-cost-")))
        upstream_port, sink_port = bench.free_port(), bench.free_port()
        tokens = bench.prepare(workdir, upstream_port, sink_port)
        nginx = shutil.which("nginx", path="/usr/sbin:/usr/bin") or "nginx"
        conf = bench.nginx_conf(workdir, "upstream", bench.upstream_server(workdir, upstream_port))
        stack.enter_context(bench.process([nginx, "-c", str(conf), "-p", str(workdir)],
                                          upstream_port))  # fmt: skip
        header = " | ".join(trees)
        print(f"Instructions per request ({args.loop}, {args.requests} sequential keep-alive "
              f"requests after {args.warmup}; "
              + "; ".join(f"{name}: {build_name(tree)}" for name, tree in trees.items())
              + "):\n")  # fmt: skip
        print(f"| case | {header} |" + (" change |" if len(trees) == 2 else ""))
        print("|---|" + "---|" * (len(trees) + (len(trees) == 2)))
        for case in cases:
            token = tokens[case.token] if case.token else ""
            counts = [instructions_per_request(tree, workdir, case, token, args)
                      for tree in trees.values()]  # fmt: skip
            row = " | ".join(f"{count:,.0f}" for count in counts)
            change = f" {counts[1] / counts[0] - 1:+.1%} |" if len(counts) == 2 else ""
            print(f"| {case.name} | {row} |{change}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
