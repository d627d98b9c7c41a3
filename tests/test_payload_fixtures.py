"""frontend/tests/fixtures/payloads.json is current: what the writer and payload.py give today.

The Node tests decode its payloads with decode.js and expect its numbers; a fixture left
behind by a change of the writer or of payload.py would let the two languages drift apart.
Compressed bytes may differ between zlib builds (ISA-L or zlib), so the data part is compared
inflated; everything else byte for byte.
"""

import base64
import json
import struct
import sys
import zlib
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tools"))
try:
    import gen_payload_fixtures
finally:
    sys.path.pop(0)

HOW = "stale: run python tools/gen_payload_fixtures.py"


def _parts(wire: bytes):
    """(everything before the data, the inflated data) of a /maps reply."""
    (length,) = struct.unpack("<I", wire[4:8])
    header = json.loads(wire[8:8 + length])
    n, c = header["stored"][:2]
    data_start = 8 + length + n * c * 6 * 4
    return wire[:data_start], zlib.decompress(wire[data_start:])


def test_the_payload_fixture_is_what_the_writer_writes_now():
    text = gen_payload_fixtures.TARGET.read_text()
    assert len(text) < 16_000, "keep the fixture small"
    committed = json.loads(text)
    fresh = gen_payload_fixtures.build()
    assert [c["name"] for c in committed["cases"]] == [c["name"] for c in fresh["cases"]], HOW
    for old, new in zip(committed["cases"], fresh["cases"]):
        for key in ("header", "stats", "values"):
            assert old[key] == new[key], f"{old['name']}: {key} {HOW}"
        assert _parts(base64.b64decode(old["wire"])) == _parts(base64.b64decode(new["wire"])), HOW


def test_the_cases_cover_what_decode_js_must_handle():
    cases = json.loads(gen_payload_fixtures.TARGET.read_text())["cases"]
    encodings = {c["header"]["encoding"] for c in cases}
    assert encodings == {"uint8", "float16"}
    values = [v for c in cases for v in c["values"]]
    assert "nan" in values and "inf" in values
    assert any(c["header"]["downsample"] > 1 for c in cases)
    assert any(c["header"]["stored"][0] > 1 for c in cases)
    # quantisation is exercised: the middle code 127 and both ends are among the codes
    assert {0, 127, 254} <= set(gen_payload_fixtures.CODES)
