"""A passive observer's view of a virtual network: raw packet capture and TCP stream reassembly.

There is no tcpdump here; :func:`sniffing` runs this module as a small sniffer inside the switch
namespace of a :class:`helpers.netns.VirtualNetwork` (an ``AF_PACKET`` raw socket on the bridge,
put into promiscuous mode so that it sees the frames the bridge forwards between hosts) and
writes a classic pcap file. :func:`read_pcap` and :func:`reassemble` turn that file into the byte
streams each TCP connection carried, one per direction, placed by sequence number: segments may
arrive twice (retransmissions), overlap or out of order; bytes never captured are reported as
``holes`` rather than silently closed up.

    with sniffing(net, path):
        ...run the parties...
    streams = reassemble(read_pcap(path))

Run as ``python -m helpers.capture --interface br0 --out FILE`` (needs root); it prints ``ready``
once capturing and stops on SIGTERM/SIGINT.
"""

from __future__ import annotations

import argparse
import contextlib
import signal
import socket
import struct
import subprocess
import sys
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO

ETH_P_ALL, ETH_P_IP = 0x0003, 0x0800
SOL_PACKET, PACKET_ADD_MEMBERSHIP, PACKET_MR_PROMISC = 263, 1, 1
SO_RCVBUFFORCE = 33  # <asm-generic/socket.h>; root may exceed rmem_max
SNAPLEN = 1 << 18  # above the largest GSO frame a veth hands the bridge (64 KiB + headers)
_PCAP_HEADER = struct.Struct("<IHHiIII")
_PCAP_RECORD = struct.Struct("<IIII")
_PCAP_MAGIC, _LINKTYPE_ETHERNET = 0xA1B2C3D4, 1
TCP_FIN, TCP_SYN, TCP_RST, TCP_ACK = 0x01, 0x02, 0x04, 0x10


# -- pcap files ---------------------------------------------------------------------------------
def write_pcap_header(out: BinaryIO) -> None:
    out.write(_PCAP_HEADER.pack(_PCAP_MAGIC, 2, 4, 0, 0, SNAPLEN, _LINKTYPE_ETHERNET))


def write_pcap_record(out: BinaryIO, timestamp: float, frame: bytes, original: int) -> None:
    seconds = int(timestamp)
    out.write(_PCAP_RECORD.pack(seconds, int((timestamp - seconds) * 1e6), len(frame), original))
    out.write(frame)


@dataclass(frozen=True)
class Frame:
    """One captured Ethernet frame: capture time, bytes, and its length on the wire."""

    time: float
    data: bytes
    original: int


def read_pcap(path: Path) -> list[Frame]:
    """Every frame of a classic (microsecond, little-endian, Ethernet) pcap file."""
    raw = Path(path).read_bytes()
    magic, _, _, _, _, _, linktype = _PCAP_HEADER.unpack_from(raw)
    if magic != _PCAP_MAGIC or linktype != _LINKTYPE_ETHERNET:
        raise ValueError(f"{path}: not a little-endian Ethernet pcap file")
    frames, at = [], _PCAP_HEADER.size
    while at + _PCAP_RECORD.size <= len(raw):
        seconds, micros, included, original = _PCAP_RECORD.unpack_from(raw, at)
        at += _PCAP_RECORD.size
        frames.append(Frame(seconds + micros / 1e6, raw[at:at + included], original))
        at += included
    return frames


# -- the sniffer --------------------------------------------------------------------------------
def sniff(interface: str, out_path: Path) -> int:
    """Capture every frame seen on ``interface`` into ``out_path`` until SIGTERM/SIGINT.

    Returns the number of frames truncated by the snap length (always 0 in practice; a
    truncated frame shows up as a hole after reassembly)."""
    stop = False

    def on_signal(signum: int, frame: object) -> None:
        nonlocal stop
        stop = True

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    sock = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(ETH_P_ALL))
    sock.setsockopt(socket.SOL_SOCKET, SO_RCVBUFFORCE, 256 << 20)  # bursts: never drop
    sock.bind((interface, 0))
    membership = struct.pack("iHH8s", socket.if_nametoindex(interface), PACKET_MR_PROMISC, 0, b"")
    sock.setsockopt(SOL_PACKET, PACKET_ADD_MEMBERSHIP, membership)
    sock.settimeout(0.2)
    buf, truncated = bytearray(SNAPLEN), 0
    with open(out_path, "wb") as out:
        write_pcap_header(out)
        print("ready", flush=True)
        while True:
            try:
                n = sock.recv_into(buf, SNAPLEN, socket.MSG_TRUNC)
            except TimeoutError:
                if stop:
                    break
                continue
            except InterruptedError:
                continue
            now = time.time()
            kept = min(n, SNAPLEN)
            truncated += n > SNAPLEN
            write_pcap_record(out, now, bytes(buf[:kept]), n)
    return truncated


@contextlib.contextmanager
def sniffing(net: object, out_path: Path, interface: str = "br0") -> Iterator[Path]:
    """Capture on the bridge of ``net`` (a VirtualNetwork) while the block runs."""
    from helpers.netns import VirtualNetwork

    assert isinstance(net, VirtualNetwork)
    argv = ["ip", "netns", "exec", net.switch, sys.executable, "-m", "helpers.capture",
            "--interface", interface, "--out", str(out_path)]
    here = str(Path(__file__).resolve().parent.parent)
    env = {"PYTHONPATH": here, "PATH": "/usr/sbin:/usr/bin:/sbin:/bin"}
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env=env)
    try:
        line = proc.stdout.readline() if proc.stdout else ""
        if line.strip() != "ready":
            proc.kill()
            raise RuntimeError(f"sniffer did not start: {line!r} {proc.communicate()[1]}")
        yield Path(out_path)
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=30)
        if proc.returncode != 0:
            raise RuntimeError(f"sniffer failed ({proc.returncode}): {err}")


# -- TCP reassembly -----------------------------------------------------------------------------
@dataclass(frozen=True)
class Segment:
    """The TCP part of one IPv4 frame."""

    time: float
    src: tuple[str, int]
    dst: tuple[str, int]
    seq: int
    flags: int
    payload: bytes


def parse_frame(frame: Frame) -> Segment | None:
    """The TCP segment an Ethernet/IPv4 frame carries (None for anything else)."""
    data = frame.data
    if len(data) < 14 + 20 or struct.unpack_from("!H", data, 12)[0] != ETH_P_IP:
        return None
    ip = 14
    version_ihl, total = data[ip], struct.unpack_from("!H", data, ip + 2)[0]
    if version_ihl >> 4 != 4 or data[ip + 9] != socket.IPPROTO_TCP:
        return None
    tcp = ip + (version_ihl & 0x0F) * 4
    sport, dport, seq = struct.unpack_from("!HHI", data, tcp)
    offset_flags = struct.unpack_from("!H", data, tcp + 12)[0]
    start = tcp + (offset_flags >> 12) * 4
    end = ip + total if total else len(data)  # total 0: a GSO frame above 64 KiB
    src = (socket.inet_ntoa(data[ip + 12:ip + 16]), sport)
    dst = (socket.inet_ntoa(data[ip + 16:ip + 20]), dport)
    return Segment(frame.time, src, dst, seq, offset_flags & 0x3F, data[start:end])


@dataclass
class Stream:
    """The bytes one side of a TCP connection sent, in order.

    ``initiator``: this side sent the SYN (it is the client of the connection). ``holes`` are
    (start, end) byte ranges never captured; ``conflicts`` counts retransmitted
    bytes that differed from the first copy (the first copy is kept); ``spans`` are the
    (start, end, capture time) of the segments that placed the bytes."""

    src: tuple[str, int]
    dst: tuple[str, int]
    data: bytes
    syn: bool
    fin: bool
    initiator: bool = False
    holes: list[tuple[int, int]] = field(default_factory=list)
    conflicts: int = 0
    spans: list[tuple[int, int, float]] = field(default_factory=list)

    @property
    def complete(self) -> bool:
        """Seen from the SYN, nothing missing, nothing contradictory."""
        return self.syn and not self.holes and not self.conflicts

    def time_at(self, offset: int) -> float:
        """When the byte at ``offset`` was first captured."""
        return min((t for start, end, t in self.spans if start <= offset < end),
                   default=float("inf"))


@dataclass
class _Direction:
    src: tuple[str, int]
    dst: tuple[str, int]
    isn: int | None = None
    fin: bool = False
    initiator: bool = False
    segments: list[Segment] = field(default_factory=list)


def _assemble(d: _Direction) -> Stream:
    base = d.isn if d.isn is not None else min((s.seq for s in d.segments), default=0)
    placed: list[tuple[int, bytes, float]] = []
    for s in d.segments:
        if s.payload:
            rel = (s.seq - base) % (1 << 32)
            if rel < 1 << 31:  # else data from before the SYN we took as the start: ignore
                placed.append((rel, s.payload, s.time))
    placed.sort(key=lambda p: (p[0], -len(p[1])))
    end = max((rel + len(p) for rel, p, _ in placed), default=0)
    data, have = bytearray(end), bytearray(end)
    conflicts, spans = 0, []
    for rel, payload, t in placed:
        stop = rel + len(payload)
        filled = False
        for a, b in _runs(have, rel, stop, 1):  # bytes already placed: must agree
            conflicts += sum(x != y for x, y in zip(data[a:b], payload[a - rel:b - rel],
                                                    strict=True))
        for a, b in _runs(have, rel, stop, 0):  # bytes still missing: fill
            data[a:b], have[a:b] = payload[a - rel:b - rel], b"\x01" * (b - a)
            filled = True
        if filled:
            spans.append((rel, stop, t))
    holes = list(_runs(have, 0, end, 0))
    return Stream(d.src, d.dst, bytes(data), d.isn is not None, d.fin, d.initiator, holes,
                  conflicts, spans)


def _runs(flags: bytearray, start: int, stop: int, value: int) -> Iterator[tuple[int, int]]:
    """Maximal ranges within [start, stop) where ``flags`` holds ``value`` (0 or 1)."""
    other = 1 - value
    i = start
    while i < stop:
        i = flags.find(value, i, stop)
        if i < 0:
            return
        j = flags.find(other, i, stop)
        j = stop if j < 0 else j
        yield i, j
        i = j


def reassemble(frames: Iterable[Frame]) -> list[Stream]:
    """Every TCP stream (one per direction of each connection) in order of its first packet.

    A SYN on a 4-tuple that already carried another connection (ports are reused) starts a
    new stream."""
    open_: dict[tuple[tuple[str, int], tuple[str, int]], _Direction] = {}
    done: list[_Direction] = []
    for frame in sorted(frames, key=lambda f: f.time):
        seg = parse_frame(frame)
        if seg is None:
            continue
        key = (seg.src, seg.dst)
        d = open_.get(key)
        if seg.flags & TCP_SYN:
            isn = (seg.seq + 1) % (1 << 32)
            if d is not None and d.isn not in (None, isn):
                done.append(open_.pop(key))
                d = None
            if d is None:
                d = open_[key] = _Direction(seg.src, seg.dst)
            d.isn = isn
            d.initiator = not seg.flags & TCP_ACK
        elif d is None:
            d = open_[key] = _Direction(seg.src, seg.dst)
        d.fin |= bool(seg.flags & TCP_FIN)
        d.segments.append(seg)
    directions = done + list(open_.values())
    directions.sort(key=lambda d: min((s.time for s in d.segments), default=0.0))
    return [_assemble(d) for d in directions]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m helpers.capture")
    parser.add_argument("--interface", required=True)
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args(argv)
    truncated = sniff(args.interface, args.out)
    if truncated:
        print(f"{truncated} frames truncated", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
