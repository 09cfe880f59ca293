"""tests/helpers/capture.py on a synthetic capture: pcap round trip and exact TCP reassembly."""

from __future__ import annotations

import socket
import struct
from pathlib import Path

from helpers.capture import (
    TCP_ACK,
    TCP_FIN,
    TCP_SYN,
    Frame,
    read_pcap,
    reassemble,
    write_pcap_header,
    write_pcap_record,
)

CLIENT, SERVER = ("10.213.0.2", 40000), ("10.213.0.1", 29500)


def tcp_frame(src: tuple[str, int], dst: tuple[str, int], seq: int, flags: int,
              payload: bytes = b"") -> bytes:
    """An Ethernet/IPv4/TCP frame as a bridge sees it (checksums left 0; padded to 60 bytes)."""
    tcp = struct.pack("!HHIIHHHH", src[1], dst[1], seq % (1 << 32), 0, (5 << 12) | flags,
                      65535, 0, 0)
    ip = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(tcp) + len(payload), 0, 0, 64,
                     socket.IPPROTO_TCP, 0, socket.inet_aton(src[0]), socket.inet_aton(dst[0]))
    frame = b"\x02" * 6 + b"\x04" * 6 + b"\x08\x00" + ip + tcp + payload
    return frame.ljust(60, b"\x00")


def write(path: Path, frames: list[bytes]) -> list[Frame]:
    with open(path, "wb") as out:
        write_pcap_header(out)
        for i, frame in enumerate(frames):
            write_pcap_record(out, 1000.0 + i / 1000, frame, len(frame))
    return read_pcap(path)


def test_streams_are_exact_despite_retransmission_overlap_reordering_and_padding(
        tmp_path) -> None:
    sent = bytes(range(256)) * 40  # 10240 bytes from the client
    reply = b"ok"
    isn, server_isn = 0xFFFFF000, 77  # the client's sequence numbers wrap past 2^32
    segments = [(0, 1000), (2000, 3000), (1000, 2000),  # reordered
                (2000, 3000),  # retransmitted
                (2500, 4000),  # overlapping a retransmission
                (4000, 10239), (10239, 10240)]  # the last byte alone: a padded short frame
    frames = [tcp_frame(CLIENT, SERVER, isn, TCP_SYN),
              tcp_frame(SERVER, CLIENT, server_isn, TCP_SYN | TCP_ACK)]
    frames += [tcp_frame(CLIENT, SERVER, isn + 1 + a, TCP_ACK, sent[a:b]) for a, b in segments]
    frames += [tcp_frame(SERVER, CLIENT, server_isn + 1, TCP_ACK, reply),
               tcp_frame(CLIENT, SERVER, isn + 1 + len(sent), TCP_FIN | TCP_ACK)]
    read = write(tmp_path / "c.pcap", frames)
    assert [f.data for f in read] == frames
    client, server = reassemble(read)
    assert (client.src, client.dst, client.data) == (CLIENT, SERVER, sent)
    assert (server.src, server.dst, server.data) == (SERVER, CLIENT, reply)
    assert (client.initiator, server.initiator) == (True, False)
    assert client.complete and server.complete and client.fin and not server.fin
    assert client.time_at(1500) == 1000.004  # placed by the third data segment
    assert client.time_at(2000) == 1000.003


def test_a_missing_segment_is_a_hole_and_a_differing_copy_a_conflict(tmp_path) -> None:
    data = b"a" * 100 + b"b" * 100 + b"c" * 100
    frames = [tcp_frame(CLIENT, SERVER, 9, TCP_SYN),
              tcp_frame(CLIENT, SERVER, 10, TCP_ACK, data[:100]),
              tcp_frame(CLIENT, SERVER, 210, TCP_ACK, data[200:]),
              tcp_frame(CLIENT, SERVER, 260, TCP_ACK, b"X" * 10)]  # differs from the first copy
    (stream,) = reassemble(write(tmp_path / "c.pcap", frames))
    assert stream.holes == [(100, 200)] and stream.conflicts == 10 and not stream.complete
    assert stream.data == data[:100] + bytes(100) + data[200:]


def test_a_reused_four_tuple_starts_a_new_stream(tmp_path) -> None:
    frames = [tcp_frame(CLIENT, SERVER, 100, TCP_SYN),
              tcp_frame(CLIENT, SERVER, 101, TCP_ACK, b"first"),
              tcp_frame(CLIENT, SERVER, 5000, TCP_SYN),
              tcp_frame(CLIENT, SERVER, 5001, TCP_ACK, b"second")]
    streams = reassemble(write(tmp_path / "c.pcap", frames))
    assert [s.data for s in streams] == [b"first", b"second"]
