"""The framing's fast paths give the same bytes, fields and errors as the general paths and as Pyro5.

* ``ReceivingMessage`` checks tag, version and magic on the unpacked fields
  (no slicing); a bad header must still raise exactly what
  ``validate_header_start`` says.
* ``add_payload`` hands a body without annotations or compression through as
  is; it must equal what the general (memoryview) path yields.
* A message built by ``Session.invoke`` / ``SendingMessage`` is Pyro5's bytes.
"""

from __future__ import annotations

import struct

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pyrite.core import protocol
from pyrite.core.errors import ProtocolError
from pyrite.core.protocol import ReceivingMessage, SendingMessage
from pyrite.core.session import CLIENT, Session
from Pyro5 import protocol as pyro5_protocol

fields = st.tuples(
    st.integers(1, 6),  # message type
    st.integers(0, 0xFFFF).map(lambda f: f & ~(protocol.FLAGS_COMPRESSED | protocol.FLAGS_CORR_ID)),
    st.integers(0, 0xFFFF),  # seq
    st.integers(0, 255),  # serializer id
)
annotation_maps = st.dictionaries(
    st.text("ABCDEFGHIJKLMNOPQRSTUVWXYZ", min_size=4, max_size=4), st.binary(max_size=40), max_size=3
)


@settings(max_examples=200, deadline=None)
@given(fields, st.binary(max_size=300), annotation_maps)
def test_sent_bytes_are_pyro5s(head, payload, annotations):
    msgtype, flags, seq, ser = head
    ours = SendingMessage(msgtype, flags, seq, ser, payload, annotations, compress=False)
    theirs = pyro5_protocol.SendingMessage(msgtype, flags, seq, ser, payload, annotations)
    assert ours.data == theirs.data


@settings(max_examples=100, deadline=None)
@given(st.integers(0, 0xFFFF), st.integers(0, 255), st.binary(max_size=300))
def test_session_invoke_bytes_are_pyro5s(seq, ser, payload):
    session = Session(CLIENT, seq=seq)
    ours = session.invoke(ser, payload)
    theirs = pyro5_protocol.SendingMessage(protocol.MSG_INVOKE, 0, (seq + 1) & 0xFFFF, ser, payload)
    assert ours.data == theirs.data


@settings(max_examples=200, deadline=None)
@given(fields, st.binary(max_size=300), annotation_maps)
def test_parsed_fields_match_pyro5_and_the_general_path(head, payload, annotations):
    msgtype, flags, seq, ser = head
    data = pyro5_protocol.SendingMessage(msgtype, flags, seq, ser, payload, annotations).data
    ours = ReceivingMessage(data[: protocol.HEADER_SIZE], data[protocol.HEADER_SIZE :])
    theirs = pyro5_protocol.ReceivingMessage(data[: protocol.HEADER_SIZE], data[protocol.HEADER_SIZE :])
    assert (ours.type, ours.flags, ours.seq, ours.serializer_id) == (msgtype, flags, seq, ser)
    assert (ours.type, ours.flags, ours.seq, ours.serializer_id) == (
        theirs.type,
        theirs.flags,
        theirs.seq,
        theirs.serializer_id,
    )
    assert bytes(ours.data) == bytes(theirs.data) == payload
    assert ours.annotations == theirs.annotations == annotations
    # the general path, through a memoryview body, agrees with the pass-through
    general = ReceivingMessage(data[: protocol.HEADER_SIZE], memoryview(data)[protocol.HEADER_SIZE :])
    assert bytes(general.data) == bytes(ours.data) and general.annotations == ours.annotations


def _header(tag: bytes = b"PYRO", version: int = protocol.PROTOCOL_VERSION, magic: int = protocol.MAGIC) -> bytes:
    return struct.pack(protocol.HEADER_FORMAT, tag, version, 4, 2, 0, 1, 0, 0, b"\0" * 16, 0, magic)


@pytest.mark.parametrize(
    "header",
    [
        _header(tag=b"PYRX"),
        _header(tag=b"HTTP"),
        _header(version=501),
        _header(version=0),
        _header(magic=0x4DC4),
        _header(magic=0),
        _header(tag=b"XYRO", version=1, magic=1),
    ],
)
def test_a_bad_header_raises_what_validate_header_start_says(header):
    with pytest.raises(ProtocolError) as expected:
        protocol.validate_header_start(header)
    with pytest.raises(ProtocolError) as got:
        ReceivingMessage(header)
    assert type(got.value) is type(expected.value) and str(got.value) == str(expected.value)


def test_a_good_header_passes():
    msg = ReceivingMessage(_header(), b"")
    assert (msg.type, msg.serializer_id, msg.seq, msg.data) == (4, 2, 1, b"")


def test_pass_through_body_still_checks_its_length():
    with pytest.raises(ProtocolError, match="header announced 0"):
        ReceivingMessage(_header(), b"x")
