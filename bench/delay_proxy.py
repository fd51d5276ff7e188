#!/usr/bin/env python3
"""A TCP proxy that delays each direction by half a round-trip time: latency for the
benchmark's hosts without `netem` (this kernel has none). One process, asyncio, one
listening port per host.

    delay_proxy.py --rtt 80 --map 127.0.0.1:40001=172.17.0.2:22 --map ...

Each chunk read from one side is written to the other side RTT/2 after it arrived, in
order, so a request and its answer pay one RTT, and a stream of data still flows at the
link's own rate (a delay line, not a bandwidth cap). Prints `ready` once every port
listens; exits on SIGTERM.
"""
import argparse
import asyncio
import os
import signal
import time


async def pump(reader, writer, delay):
    """Copy reader to writer, each chunk `delay` seconds after it was read."""
    queue = asyncio.Queue()

    async def read():
        try:
            while True:
                data = await reader.read(65536)
                queue.put_nowait((time.monotonic() + delay, data))
                if not data:
                    return
        except (ConnectionError, OSError):
            queue.put_nowait((time.monotonic() + delay, b""))

    async def write():
        try:
            while True:
                due, data = await queue.get()
                wait = due - time.monotonic()
                if wait > 0:
                    await asyncio.sleep(wait)
                if not data:
                    if writer.can_write_eof():
                        writer.write_eof()
                    return
                writer.write(data)
                await writer.drain()
        except (ConnectionError, OSError):
            pass

    await asyncio.gather(read(), write())


async def serve(listen_host, listen_port, target_host, target_port, delay):
    async def handle(client_reader, client_writer):
        try:
            up_reader, up_writer = await asyncio.open_connection(target_host, target_port)
        except OSError:
            client_writer.close()
            return
        await asyncio.gather(pump(client_reader, up_writer, delay), pump(up_reader, client_writer, delay))
        for w in (client_writer, up_writer):
            w.close()

    return await asyncio.start_server(handle, listen_host, listen_port, backlog=1024)


async def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--rtt", type=float, required=True, help="round-trip time to add, in ms")
    ap.add_argument("--map", action="append", required=True, help="LISTEN_HOST:PORT=TARGET_HOST:PORT")
    a = ap.parse_args()
    delay = a.rtt / 2000.0
    servers = []
    for m in a.map:
        listen, target = m.split("=")
        lh, lp = listen.rsplit(":", 1)
        th, tp = target.rsplit(":", 1)
        servers.append(await serve(lh, int(lp), th, int(tp), delay))
    # Stopped by SIGTERM at once: connections still open are cut, as a network would.
    signal.signal(signal.SIGTERM, lambda *_: os._exit(0))
    print("ready", flush=True)
    await asyncio.Event().wait()


if __name__ == "__main__":
    asyncio.run(main())
