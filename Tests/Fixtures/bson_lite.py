"""A small BSON reader and writer for the test fixtures (no third-party
package): enough to rewrite a server's answers on the wire (mongo_proxy.py).

A document decodes to a `Doc` (its fields in order), an array to a list, and
every other value to a `Scalar` holding its BSON type byte and its encoded
bytes, so that whatever is not rewritten is written back byte for byte.
"""
import datetime
import struct

DOUBLE, STRING, DOCUMENT, ARRAY, BINARY, OBJECTID, BOOL, DATETIME, NULL = 1, 2, 3, 4, 5, 7, 8, 9, 10
REGEX, CODE, INT32, TIMESTAMP, INT64, DECIMAL128, MINKEY, MAXKEY = 11, 13, 16, 17, 18, 19, 127, 255
FIXED = {DOUBLE: 8, OBJECTID: 12, BOOL: 1, DATETIME: 8, NULL: 0, INT32: 4, TIMESTAMP: 8, INT64: 8,
         DECIMAL128: 16, MINKEY: 0, MAXKEY: 0}


class Scalar:
    def __init__(self, kind, raw):
        self.kind, self.raw = kind, raw

    @staticmethod
    def string(text):
        data = text.encode() + b"\x00"
        return Scalar(STRING, struct.pack("<i", len(data)) + data)

    @property
    def text(self):
        return self.raw[4:-1].decode(errors="replace") if self.kind == STRING else None

    @property
    def int(self):
        if self.kind == INT32:
            return struct.unpack("<i", self.raw)[0]
        if self.kind == INT64:
            return struct.unpack("<q", self.raw)[0]
        return None

    @property
    def millis(self):
        return struct.unpack("<q", self.raw)[0] if self.kind == DATETIME else None


class Doc:
    """A BSON document: its (key, value) pairs, in order."""

    def __init__(self, items=None):
        self.items = items or []

    def get(self, key):
        return next((v for k, v in self.items if k == key), None)

    def set(self, key, value):
        for i, (k, _) in enumerate(self.items):
            if k == key:
                self.items[i] = (key, value)
                return
        self.items.append((key, value))

    def remove(self, key):
        self.items = [(k, v) for k, v in self.items if k != key]

    def keys(self):
        return [k for k, _ in self.items]


def _cstring(data, at):
    end = data.index(b"\x00", at)
    return data[at:end].decode(errors="replace"), end + 1


def decode(data, at=0):
    """The document at `at` in `data`, and the offset after it."""
    length = struct.unpack("<i", data[at:at + 4])[0]
    end, pos, items = at + length - 1, at + 4, []
    while pos < end:
        kind = data[pos]
        key, pos = _cstring(data, pos + 1)
        if kind in (DOCUMENT, ARRAY):
            value, pos = decode(data, pos)
            if kind == ARRAY:
                value = [v for _, v in value.items]
        elif kind in (STRING, CODE):
            n = struct.unpack("<i", data[pos:pos + 4])[0]
            value, pos = Scalar(kind, data[pos:pos + 4 + n]), pos + 4 + n
        elif kind == BINARY:
            n = struct.unpack("<i", data[pos:pos + 4])[0]
            value, pos = Scalar(kind, data[pos:pos + 5 + n]), pos + 5 + n
        elif kind == REGEX:
            _, p = _cstring(data, pos)
            _, p = _cstring(data, p)
            value, pos = Scalar(kind, data[pos:p]), p
        elif kind in FIXED:
            n = FIXED[kind]
            value, pos = Scalar(kind, data[pos:pos + n]), pos + n
        else:
            raise ValueError("BSON type %d not supported" % kind)
        items.append((key, value))
    return Doc(items), at + length


def encode(doc):
    body = b""
    for key, value in doc.items:
        if isinstance(value, Doc):
            body += bytes([DOCUMENT]) + key.encode() + b"\x00" + encode(value)
        elif isinstance(value, list):
            body += bytes([ARRAY]) + key.encode() + b"\x00" + encode(Doc([(str(i), v) for i, v in enumerate(value)]))
        else:
            body += bytes([value.kind]) + key.encode() + b"\x00" + value.raw
    return struct.pack("<i", len(body) + 5) + body + b"\x00"


def iso(millis):
    """A BSON date as the text a server that returns dates as strings writes."""
    moment = datetime.datetime.fromtimestamp(millis / 1000, tz=datetime.timezone.utc)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + "%03dZ" % (millis % 1000)
