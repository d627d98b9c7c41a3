"""The on-disk format: metadata versioning, header checks, decoding of damaged payloads."""

import json
import re
import zlib
from pathlib import Path

import numpy as np
import pytest
from tensorboard.compat.proto import summary_pb2

from tb_featmap import metadata, payload


def test_documented_known_versions_match_the_one_constant():
    # mesh's comment drifted from its constant; ours are checked, in both places they are said.
    source = Path(payload.__file__).read_text()
    for text in (metadata.__doc__, source):
        documented = re.search(r"Versions this reader knows: ([\d, ]+)\.", text).group(1)
        assert [int(v) for v in documented.split(",")] == list(range(1, payload.FORMAT_VERSION + 1))
    assert "PROTOCOL_VERSION" not in metadata.__all__ and "FORMAT_VERSION" in payload.__all__


def test_the_old_names_still_work_with_a_deprecation_warning():
    with pytest.warns(DeprecationWarning, match="payload.FORMAT_VERSION"):
        assert metadata.PROTOCOL_VERSION == payload.FORMAT_VERSION
    with pytest.warns(DeprecationWarning, match="summary_pb2"):
        md = metadata.create_summary_metadata(summary_pb2)
    assert md.data_class == summary_pb2.DATA_CLASS_BLOB_SEQUENCE


def test_metadata_round_trip_sets_data_class():
    md = metadata.create_summary_metadata()
    assert md.data_class == summary_pb2.DATA_CLASS_BLOB_SEQUENCE
    assert md.plugin_data.plugin_name == "feature_maps"
    assert list(json.loads(md.plugin_data.content))[0] == "version"
    assert metadata.parse_plugin_metadata(md.plugin_data.content).version == payload.FORMAT_VERSION


def test_the_writer_uses_the_one_encoding_table_and_stays_within_what_readers_accept():
    summary = pytest.importorskip("tb_featmap.summary")
    assert summary.MAX_VALUES_PER_LAYER <= payload.MAX_STORED_VALUES
    assert summary.MAX_MAPS_PER_LAYER <= payload.MAX_STORED_MAPS
    assert '"deflate-delta"' not in Path(summary.__file__).read_text()  # payload.COMPRESSION


@pytest.mark.parametrize("content, error", [
    ("text", TypeError), (b"{", ValueError), (b"[]", ValueError), (b'{"version": "1"}', ValueError),
    (b'{"version": 0}', ValueError), (b'{"version": true}', ValueError),
    (b"[" * 100000, ValueError), (b'{"version": ' + b"[" * 3000 + b"]" * 3000 + b"}", ValueError),
    (b" " * 5000, ValueError),
])
def test_parse_plugin_metadata_rejects(content, error):
    with pytest.raises(error):
        metadata.parse_plugin_metadata(content)


def test_parse_plugin_metadata_reads_newer_versions_for_the_caller_to_skip():
    assert metadata.parse_plugin_metadata(b'{"version": 7, "new": 1}').version == 7


def test_tags_are_namespaced():
    assert metadata.make_tag("features.0") == "feature_maps/features.0"
    assert metadata.make_tag("conv", "probe") == "feature_maps/probe/conv"
    assert metadata.layer_name("feature_maps/probe/conv") == "probe/conv"


def header(**changes):
    fields = {"layout": "NCHW", "shape": [1, 2, 2, 3], "stored": [1, 2, 2, 3], "encoding": "uint8",
              "compression": "deflate-delta", "downsample": 1, "dropped": {}, "seq": 0}
    fields.update(changes)
    return payload.encode_header(fields)


def test_header_version_comes_first_and_newer_is_refused():
    assert header().startswith(b'{"version":1,')
    newer = header().replace(b'"version":1', b'"version":2')
    with pytest.raises(payload.NewerVersionError, match="upgrade"):
        payload.decode_header(newer)


@pytest.mark.parametrize("blob", [
    b"", b"\xff\xfe", b"[1]", header(stored=[1, 2]), header(stored=[1, 0, 2, 2]),
    header(encoding="int4"), header(compression="lz4"), b'{"version": "x"}',
    # Found by the adversarial pass of issue 10: each made a route 500.
    header(encoding=["uint8"]), header(encoding={"a": 1}), header(stored=[True, True, 2, 2]),
    header(layout=[[["NCHW"]]]), header(layout={"x": 1}), header(shape=[[1]]),
    header(version=True), header(seq=True), header(downsample=False), header(dropped={"a": True}),
    # Sizes bounded before anything is allocated.
    header(stored=[1, 1 << 17, 1, 1]), header(stored=[1, 1, 1 << 13, 1 << 12]),
    header(stored=[2**31, 2**31, 2**31, 2**31]), header(dropped={str(i): 0 for i in range(20)}),
    header(dtype="x" * 1000), header(layout="NCHWX"), b" " * (payload.MAX_HEADER_BYTES + 1),
    # Counts the tab could not hold exactly (a JSON number is a double there).
    header(seq=2**53), header(downsample=10**4000), header(dropped={"tokens": 2**53}),
    header(shape=[1, 2, 2**62, 2, 3]),
    b"[" * 100000, b'{"version": 1, "stored": ' + b"[" * 5000 + b"]" * 5000 + b"}",
])
def test_bad_headers_raise_payload_error(blob):
    with pytest.raises(payload.PayloadError) as caught:
        payload.decode_header(blob)
    assert len(str(caught.value)) < 200


def test_a_decoded_header_holds_only_checked_fields():
    decoded = payload.decode_header(header(extra=[[[1]]], shape=None))
    assert "extra" not in decoded and "shape" not in decoded
    assert decoded["seq"] == 0 and decoded["downsample"] == 1 and decoded["dropped"] == {}


def test_inflation_stops_at_the_expected_size():
    h = payload.decode_header(header())
    stats = payload.decode_stats(h, np.zeros((1, 2, 6), "<f4").tobytes())
    bomb = zlib.compress(b"\0" * (64 << 20))  # 64 KiB that inflates to 64 MiB
    with pytest.raises(payload.PayloadError, match="more than the 12 bytes"):
        payload.decode_values(h, stats, bomb)
    with pytest.raises(payload.PayloadError, match="truncated"):
        payload.decode_values(h, stats, zlib.compress(b"\0" * 12)[:-2])
    assert payload.inflate(zlib.compress(b"x" * 12), 12) == b"x" * 12


def test_decode_uint8_delta_codes_and_nonfinite():
    h = payload.decode_header(header())
    stats = np.zeros((1, 2, 6), "<f4")
    stats[0, :, 0], stats[0, :, 1] = [-1.0, 5.0], [1.0, 5.0]
    codes = np.array([[[0, 127, 254], [255, 254, 0]], [[0, 0, 0], [0, 0, 0]]], np.uint8)[None]
    delta = codes.copy()
    delta[..., 1:] = codes[..., 1:] - codes[..., :-1]  # wraps mod 256
    values = payload.decode_values(h, payload.decode_stats(h, stats.tobytes()), zlib.compress(delta.tobytes()))
    np.testing.assert_allclose(values[0, 0, 0], [-1.0, 127 / 127 - 1.0, 1.0], atol=1e-6)
    assert np.isnan(values[0, 0, 1, 0]) and values[0, 0, 1, 1] == 1.0
    assert (values[0, 1] == 5.0).all()  # a constant map


def test_damaged_data_raises_payload_error():
    h = payload.decode_header(header())
    stats = payload.decode_stats(h, np.zeros((1, 2, 6), "<f4").tobytes())
    with pytest.raises(payload.PayloadError, match="decompress"):
        payload.decode_values(h, stats, b"not zlib")
    with pytest.raises(payload.PayloadError, match="expected 12"):
        payload.decode_values(h, stats, zlib.compress(b"short"))
    with pytest.raises(payload.PayloadError, match="stats"):
        payload.decode_stats(h, b"\0" * 5)


def test_wire_payload_aligns_stats():
    wire = payload.wire_payload(b'{"version":1}', b"\1" * 48, b"data")
    length = int.from_bytes(wire[4:8], "little")
    assert wire[:4] == b"TBFM" and length % 4 == 0
    assert wire[8 + length:8 + length + 48] == b"\1" * 48 and wire.endswith(b"data")
