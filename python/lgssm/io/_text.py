"""Reading a text file (CSV or JSON) as UTF-8, with errors that name the file."""

from __future__ import annotations


def read_text(path: str, error: type) -> str:
    """The text of ``path``: UTF-8 with an optional byte-order mark (removed). An empty
    file, another encoding or binary data raises ``error`` naming the file."""
    with open(path, "rb") as fh:
        raw = fh.read()
    if not raw.strip():
        raise error(f"{path}: no data (the file is empty)")
    for bom, name in (
        (b"\xff\xfe\x00\x00", "UTF-32"),
        (b"\x00\x00\xfe\xff", "UTF-32"),
        (b"\xff\xfe", "UTF-16"),
        (b"\xfe\xff", "UTF-16"),
    ):
        if raw.startswith(bom):
            raise error(f"{path}: {name} text; expected UTF-8 (save the file as UTF-8)")
    if raw.startswith(b"\xef\xbb\xbf"):
        raw = raw[3:]
    nul = raw.find(b"\x00")
    if nul >= 0:
        raise error(f"{path}: binary data (a NUL byte at offset {nul}); expected UTF-8 text")
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as err:
        line = raw.count(b"\n", 0, err.start) + 1
        raise error(
            f"{path}: not UTF-8 text (byte 0x{raw[err.start]:02x} on line {line}; a Latin-1 or other "
            f"8-bit file? save it as UTF-8)"
        ) from None
