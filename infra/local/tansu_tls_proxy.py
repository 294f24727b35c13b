#!/usr/bin/env python3
"""TLS front for a local tansu broker (used by services.sh --tls-cert/--tls-key).

tansu 0.6.0 has --cert and --key flags, but its command line puts both in one
exclusive clap group, so they cannot be given together and the broker never
serves TLS. This script terminates TLS on --listen and relays the plain bytes
to tansu on --upstream; with --client-ca, a client certificate, when one is
presented, must chain to that CA (mutual TLS). It runs the broker command given after `--` as its
child, so both live and die together (one process group for services.sh):
it exits when the broker exits and stops the broker on SIGTERM/SIGINT.

    tansu_tls_proxy.py --listen 127.0.0.1:PORT --upstream 127.0.0.1:INNER \
        --cert server.pem --key server.key -- tansu broker --listener-url \
        tcp://127.0.0.1:INNER --advertised-listener-url tcp://127.0.0.1:PORT ...

The broker must advertise the TLS port, so clients come back through here.
Standard library only.
"""

import argparse
import asyncio
import signal
import ssl
import subprocess
import sys


def host_port(text):
    host, _, port = text.rpartition(":")
    if not host or not port.isdigit():
        raise argparse.ArgumentTypeError(f"expected HOST:PORT, got {text!r}")
    return host, int(port)


async def pump(reader, writer):
    try:
        while True:
            data = await reader.read(1 << 16)
            if not data:
                break
            writer.write(data)
            await writer.drain()
    except (ConnectionError, ssl.SSLError, OSError):
        pass
    finally:
        try:
            writer.close()
        except (ConnectionError, ssl.SSLError, OSError, RuntimeError):
            pass


async def relay(client_reader, client_writer, upstream):
    try:
        up_reader, up_writer = await asyncio.open_connection(*upstream)
    except OSError as e:
        print(f"tansu_tls_proxy: upstream {upstream[0]}:{upstream[1]}: {e}", file=sys.stderr)
        client_writer.close()
        return
    await asyncio.gather(pump(client_reader, up_writer), pump(up_reader, client_writer))


async def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--listen", type=host_port, required=True)
    parser.add_argument("--upstream", type=host_port, required=True)
    parser.add_argument("--cert", required=True, help="server certificate chain (PEM)")
    parser.add_argument("--key", required=True, help="server private key (PEM)")
    parser.add_argument(
        "--client-ca",
        help="CA (PEM) that client certificates must chain to; clients may still "
        "connect without one (mutual TLS is optional)",
    )
    parser.add_argument("command", nargs=argparse.REMAINDER, help="-- broker command")
    args = parser.parse_args()
    command = args.command[1:] if args.command[:1] == ["--"] else args.command
    if not command:
        parser.error("the broker command is missing after --")

    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    ctx.load_cert_chain(args.cert, args.key)
    if args.client_ca:
        ctx.verify_mode = ssl.CERT_OPTIONAL
        ctx.load_verify_locations(args.client_ca)

    child = subprocess.Popen(command)
    server = await asyncio.start_server(
        lambda r, w: relay(r, w, args.upstream), args.listen[0], args.listen[1], ssl=ctx
    )
    print(
        f"tansu_tls_proxy: TLS on {args.listen[0]}:{args.listen[1]} -> "
        f"{args.upstream[0]}:{args.upstream[1]} (broker pid {child.pid})",
        file=sys.stderr,
        flush=True,
    )
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)

    async def watch_child():
        while child.poll() is None:
            await asyncio.sleep(0.2)
        print(f"tansu_tls_proxy: broker exited with {child.returncode}", file=sys.stderr)
        stop.set()

    watcher = asyncio.create_task(watch_child())
    await stop.wait()
    watcher.cancel()
    server.close()
    if child.poll() is None:
        child.terminate()
        try:
            child.wait(10)
        except subprocess.TimeoutExpired:
            child.kill()
            child.wait()
    return 0 if child.returncode in (0, -signal.SIGTERM) else 1


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
