"""Compiles locale/*/LC_MESSAGES/django.po into django.mo without gettext's msgfmt, for machines
that lack it (`make messages` uses msgfmt through Django when it is there). The catalogue has no
contexts; fuzzy entries are left out, as msgfmt does. The .mo layout is GNU gettext's: a header,
two tables of (length, offset) pairs, then the strings, ids sorted; a plural entry's id is
`msgid NUL msgid_plural` and its string the forms `msgstr[0] NUL msgstr[1] ...`."""

import ast
import re
import struct
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
_ENTRY = re.compile(
    r'^(?P<flags>#,[^\n]*\n)?(?:#[^\n]*\n)*msgid (?P<id>(?:".*"\n)+)'
    r'(?:msgid_plural (?P<plural>(?:".*"\n)+)(?P<forms>(?:msgstr\[\d+\] (?:".*"\n?)+)+)|msgstr (?P<str>(?:".*"\n?)+))',
    re.M,
)
_FORM = re.compile(r'^msgstr\[\d+\] (?P<str>(?:".*"\n?)+)', re.M)


def _text(block: str) -> str:
    return "".join(ast.literal_eval(line) for line in block.splitlines() if line.strip())


def read_po(path: Path) -> dict[str, str]:
    messages = {}
    for entry in _ENTRY.finditer(path.read_text(encoding="utf-8")):
        if entry["flags"] and "fuzzy" in entry["flags"]:
            continue
        msgid = _text(entry["id"])
        if entry["plural"] is not None:
            forms = [_text(form["str"]) for form in _FORM.finditer(entry["forms"])]
            msgid, msgstr = f"{msgid}\0{_text(entry['plural'])}", "\0".join(forms) if all(forms) else ""
        else:
            msgstr = _text(entry["str"])
        if msgstr or not msgid:
            messages[msgid] = msgstr
    return messages


def mo_bytes(messages: dict[str, str]) -> bytes:
    ids = sorted(messages)
    keys, values = b"", b""
    key_table, value_table = [], []
    for msgid in ids:
        raw_id, raw_str = msgid.encode(), messages[msgid].encode()
        key_table.append((len(raw_id), len(keys)))
        keys += raw_id + b"\0"
        value_table.append((len(raw_str), len(values)))
        values += raw_str + b"\0"
    header = 7 * 4
    keys_start = header + 16 * len(ids)
    values_start = keys_start + len(keys)
    output = struct.pack("Iiiiiii", 0x950412DE, 0, len(ids), header, header + 8 * len(ids), 0, 0)
    output += b"".join(struct.pack("ii", n, keys_start + at) for n, at in key_table)
    output += b"".join(struct.pack("ii", n, values_start + at) for n, at in value_table)
    return output + keys + values


def main() -> int:
    for po in sorted(ROOT.glob("locale/*/LC_MESSAGES/*.po")):
        po.with_suffix(".mo").write_bytes(mo_bytes(read_po(po)))
        print(f"compiled {po.relative_to(ROOT)} (without msgfmt)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
