"""The shared SPDY/3.1 codec: frames, header blocks, the incremental reader."""

from __future__ import annotations

import contextlib
import os
import struct
import tracemalloc
import zlib
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from portfwd.wire.spdy import (
    HEADER_DICTIONARY,
    DataFrame,
    DataPiece,
    Frame,
    FrameDecoder,
    FrameEncoder,
    FrameReader,
    GoAwayFrame,
    Headers,
    HeadersFrame,
    PingFrame,
    RstStatus,
    RstStreamFrame,
    SettingsFrame,
    SpdyProtocolError,
    SynReplyFrame,
    SynStreamFrame,
    WindowUpdateFrame,
    data_head,
    decode_header_block,
    encode_header_block,
)

# --- framing ----------------------------------------------------------------------------------


def test_dictionary_is_the_spdy3_one() -> None:
    assert len(HEADER_DICTIONARY) == 1423
    assert HEADER_DICTIONARY.startswith(b"\x00\x00\x00\x07options\x00\x00\x00\x04head")
    assert HEADER_DICTIONARY.endswith(b"charset=iso-8859-1,utf-,*,enq=0.")
    # zlib names a preset dictionary by its Adler-32: Go's zlib checks this one.
    assert zlib.adler32(HEADER_DICTIONARY) == 0xE3C6A7C2


ALL_FRAMES: list[Frame] = [
    DataFrame(1, b"hello"),
    DataFrame(3, b"", fin=True),
    DataFrame(0x7FFFFFFF, os.urandom(70_000), fin=True),
    SynStreamFrame(
        5,
        {"streamtype": ["data"], "port": ["8080"], "requestid": ["0"]},
        associated_to=0,
        priority=7,
        slot=0,
        fin=False,
    ),
    SynStreamFrame(7, {"x": ["a", "b"]}, fin=True, unidirectional=True),
    SynReplyFrame(5, {}),
    SynReplyFrame(7, {"status": ["200 OK"]}, fin=True),
    RstStreamFrame(5, RstStatus.CANCEL),
    SettingsFrame(((0, 7, 1000), (1, 4, 100)), clear=True),
    SettingsFrame(),
    PingFrame(1),
    PingFrame(0xFFFFFFFF),
    GoAwayFrame(9, 1),
    HeadersFrame(5, {"a": ["1"]}, fin=True),
    WindowUpdateFrame(5, 0x7FFFFFFF),
]


def test_every_frame_type_roundtrips_even_byte_by_byte() -> None:
    encoder, decoder = FrameEncoder(), FrameDecoder()
    wire = b"".join(encoder.encode(f) for f in ALL_FRAMES)
    assert [f for f in decoder.feed(wire)] == ALL_FRAMES

    encoder, decoder = FrameEncoder(), FrameDecoder()
    wire = b"".join(encoder.encode(f) for f in ALL_FRAMES)
    out: list[Frame] = []
    for i in range(len(wire)):
        out += decoder.feed(wire[i : i + 1])
    assert out == ALL_FRAMES


def test_frame_heads_are_the_wire_format() -> None:
    encoder = FrameEncoder()
    assert encoder.encode(DataFrame(3, b"ab", fin=True)) == b"\x00\x00\x00\x03\x01\x00\x00\x02ab"
    assert encoder.encode(PingFrame(1)) == b"\x80\x03\x00\x06\x00\x00\x00\x04\x00\x00\x00\x01"
    assert encoder.encode(RstStreamFrame(3, 5)) == bytes.fromhex("80030003000000080000000300000005")
    assert encoder.encode(WindowUpdateFrame(3, 100)) == bytes.fromhex(
        "8003000900000008000000030000" + "0064"
    )
    assert encoder.encode(GoAwayFrame(7, 0)) == bytes.fromhex("80030007000000080000000700000000")
    syn = encoder.encode(SynStreamFrame(1, {"a": ["b"]}, priority=3))
    assert syn[:4] == b"\x80\x03\x00\x01"
    assert int.from_bytes(syn[5:8], "big") == len(syn) - 8
    assert syn[8:18] == b"\x00\x00\x00\x01\x00\x00\x00\x00\x60\x00"


def test_header_block_layout() -> None:
    raw = encode_header_block({"StreamType": ["error"], "multi": ["a", "b"]})
    assert raw == (
        b"\x00\x00\x00\x02"
        b"\x00\x00\x00\x0astreamtype\x00\x00\x00\x05error"
        b"\x00\x00\x00\x05multi\x00\x00\x00\x03a\x00b"
    )
    assert decode_header_block(raw) == {"streamtype": ["error"], "multi": ["a", "b"]}


def test_header_blocks_share_one_compression_context() -> None:
    """Blocks are zlib with the SPDY dictionary, sync-flushed; later ones reuse the context."""
    encoder = FrameEncoder()
    headers = {"streamtype": ["data"], "port": ["9000"], "requestid": ["12"]}
    first = encoder.encode(SynStreamFrame(1, headers))
    second = encoder.encode(SynStreamFrame(3, headers))
    block = first[18:]
    # zlib header: deflate, FDICT set, then the dictionary's Adler-32.
    assert block[0] & 0x0F == 8 and block[1] & 0x20
    assert block[2:6] == struct.pack("!I", zlib.adler32(HEADER_DICTIONARY))
    assert block.endswith(b"\x00\x00\xff\xff")  # sync flush
    assert len(second) < len(first)  # the repeat is found in the shared window
    # A standalone decompressor with the dictionary reads the first block...
    z = zlib.decompressobj(zdict=HEADER_DICTIONARY)
    assert decode_header_block(z.decompress(block)) == headers
    # ...but the second only makes sense after the first: one context per direction.
    decoder = FrameDecoder()
    with pytest.raises(SpdyProtocolError):
        decoder.feed(second)
    decoder = FrameDecoder()
    assert decoder.feed(first + second) == [SynStreamFrame(1, headers), SynStreamFrame(3, headers)]


def test_an_idle_sessions_header_context_costs_a_few_kib() -> None:
    """Every SPDY session keeps its header compressor for as long as its forward runs; with
    zlib's defaults that was 256 KiB allocated (~100 KiB touched) per session to compress
    blocks of some 60 bytes. The blocks still read back with a stock decompressor."""
    headers = {"streamtype": ["data"], "port": ["9000"], "requestid": ["12"]}
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        encoders = [FrameEncoder() for _ in range(20)]
        blocks = [[e.encode(SynStreamFrame(n, headers)) for n in (1, 3, 5)] for e in encoders]
        per_session = (tracemalloc.get_traced_memory()[0] - before) / len(encoders)
    finally:
        tracemalloc.stop()
    assert per_session < 16 * 1024, f"{per_session:.0f} bytes per session"
    for frames in blocks:
        decoder = FrameDecoder()
        assert decoder.feed(b"".join(frames)) == [SynStreamFrame(n, headers) for n in (1, 3, 5)]
        z = zlib.decompressobj(zdict=HEADER_DICTIONARY)
        assert decode_header_block(z.decompress(frames[0][18:])) == headers


def test_decoder_rejects_broken_input() -> None:
    with pytest.raises(SpdyProtocolError, match="stream 0"):
        FrameDecoder().feed(b"\x00\x00\x00\x00\x00\x00\x00\x00")
    with pytest.raises(SpdyProtocolError, match="exceeds"):
        FrameDecoder(max_length=10).feed(b"\x00\x00\x00\x01\x00\x00\x00\x20")
    with pytest.raises(SpdyProtocolError, match="version"):
        FrameDecoder().feed(b"\x80\x02\x00\x06\x00\x00\x00\x04\x00\x00\x00\x01")
    bad_block = b"\x00\x00\x00\x01" + b"not zlib"
    with pytest.raises(SpdyProtocolError, match="decompress"):
        FrameDecoder().feed(b"\x80\x03\x00\x02\x00\x00\x00" + bytes([len(bad_block)]) + bad_block)
    # An unknown control type is skipped, and decoding goes on after it.
    unknown = b"\x80\x03\x00\x0a\x00\x00\x00\x02zz"
    assert FrameDecoder().feed(unknown + FrameEncoder().encode(PingFrame(3))) == [PingFrame(3)]


header_names = st.text(st.characters(codec="utf-8", exclude_characters="\x00"), min_size=1).map(
    str.lower
)
header_values = st.lists(
    st.text(st.characters(codec="utf-8", exclude_characters="\x00")), min_size=1, max_size=3
)
header_maps = st.dictionaries(header_names, header_values, max_size=6)


@settings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(st.integers(1, 0x7FFFFFFF), header_maps), min_size=1, max_size=5))
def test_any_headers_survive_a_shared_context(blocks: list[tuple[int, Headers]]) -> None:
    encoder, decoder = FrameEncoder(), FrameDecoder()
    frames: list[Frame] = [SynStreamFrame(sid, h) for sid, h in blocks]
    frames += [HeadersFrame(sid, h, fin=True) for sid, h in blocks]
    assert decoder.feed(b"".join(encoder.encode(f) for f in frames)) == frames


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=300), st.booleans())
def test_garbage_only_ever_raises_protocol_errors(data: bytes, control: bool) -> None:
    if control and data:
        data = b"\x80\x03" + data  # a SPDY/3 control frame head, then anything
    with contextlib.suppress(SpdyProtocolError):
        FrameDecoder().feed(data)


# --- the incremental reader -----------------------------------------------------------------

KUBECTL_CAPTURE = Path(__file__).parent / "data" / "kubectl-spdy-1.32.bin"


def _pieces_to_frames(items: list[Frame | DataPiece] | list[Frame]) -> list[Frame]:
    """Consecutive DATA of one stream merged up to a FIN (frame boundaries inside a stream's
    run of data carry no meaning), so pieces and frames can be compared."""
    out: list[Frame] = []
    for item in items:
        if isinstance(item, DataPiece | DataFrame):
            if isinstance(item, DataFrame) and not item.data and not item.fin:
                continue  # carries nothing
            last = out[-1] if out else None
            if isinstance(last, DataFrame) and last.stream_id == item.stream_id and not last.fin:
                out[-1] = DataFrame(item.stream_id, last.data + item.data, item.fin)
                continue
            out.append(DataFrame(item.stream_id, item.data, item.fin))
        else:
            out.append(item)
    return out


def test_reader_decodes_what_kubectl_sends() -> None:
    """Bytes kubectl 1.32 (Go's spdystream) wrote for two connections (capture_kubectl.py):
    per connection an error stream closed at once, then a data stream with the payload and
    FIN; header blocks share one zlib context across the session."""
    items = FrameReader().feed(KUBECTL_CAPTURE.read_bytes())
    expected: list[tuple[str, int, object]] = []
    for request, (error_id, data_id, payload) in enumerate([(1, 3, b"hello"), (5, 7, b"bye")]):
        base = {"port": ["9000"], "requestid": [str(request)]}
        expected += [
            ("syn", error_id, {**base, "streamtype": ["error"]}),
            ("data", error_id, (b"", True)),
            ("syn", data_id, {**base, "streamtype": ["data"]}),
            ("data", data_id, (payload, False)),
            ("data", data_id, (b"", True)),
        ]
    got: list[tuple[str, int, object]] = []
    for item in items:
        if isinstance(item, SynStreamFrame):
            assert item.priority == 0 and not item.fin and not item.unidirectional
            got.append(("syn", item.stream_id, item.headers))
        else:
            assert isinstance(item, DataPiece)
            got.append(("data", item.stream_id, (item.data, item.fin)))
    assert got == expected


def test_reader_reads_the_kubectl_capture_in_any_chunking() -> None:
    wire = KUBECTL_CAPTURE.read_bytes()
    whole = _pieces_to_frames(FrameReader().feed(wire))
    for size in (1, 3, 7, 8, 9, 64):
        reader = FrameReader()
        items: list[Frame | DataPiece] = []
        for i in range(0, len(wire), size):
            items += reader.feed(wire[i : i + size])
        assert _pieces_to_frames(items) == whole


def test_reader_passes_a_whole_payload_chunk_without_copying() -> None:
    reader = FrameReader()
    payload = os.urandom(32768)
    assert reader.feed(data_head(3, len(payload))) == []
    (piece,) = reader.feed(payload)
    assert isinstance(piece, DataPiece) and piece.data is payload


def test_reader_refuses_oversized_control_frames_and_data_on_stream_zero() -> None:
    with pytest.raises(SpdyProtocolError, match="exceeds"):
        FrameReader(max_control_length=100).feed(b"\x80\x03\x00\x06\x00\x00\x10\x00")
    with pytest.raises(SpdyProtocolError, match="stream 0"):
        FrameReader().feed(b"\x00\x00\x00\x00\x00\x00\x00\x05")


@settings(max_examples=150, deadline=None)
@given(
    st.lists(
        st.one_of(
            st.builds(
                DataFrame,
                st.integers(1, 0x7FFFFFFF),
                st.binary(max_size=2000),
                st.booleans(),
            ),
            st.builds(PingFrame, st.integers(0, 0xFFFFFFFF)),
            st.builds(RstStreamFrame, st.integers(1, 0x7FFFFFFF), st.integers(0, 11)),
            st.builds(SynReplyFrame, st.integers(1, 0x7FFFFFFF), header_maps, st.booleans()),
            st.builds(SynStreamFrame, st.integers(1, 0x7FFFFFFF), header_maps),
        ),
        max_size=12,
    ),
    st.lists(st.integers(1, 900), min_size=1, max_size=20),
)
def test_reader_gives_back_any_frames_in_any_chunking(frames: list[Frame], cuts: list[int]) -> None:
    encoder = FrameEncoder()
    wire = b"".join(encoder.encode(f) for f in frames)
    reader = FrameReader()
    items: list[Frame | DataPiece] = []
    pos, i = 0, 0
    while pos < len(wire):
        size = cuts[i % len(cuts)]
        items += reader.feed(wire[pos : pos + size])
        pos, i = pos + size, i + 1
    assert _pieces_to_frames(items) == _pieces_to_frames(frames)
