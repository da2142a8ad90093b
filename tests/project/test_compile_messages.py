"""The catalogue compiles the same without gettext's msgfmt (a fresh machine's `make run`)."""

import gettext
import importlib.util
import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PO = ROOT / "locale" / "zh_Hans" / "LC_MESSAGES" / "django.po"


def _compiler():
    spec = importlib.util.spec_from_file_location("compile_messages", ROOT / "scripts" / "compile_messages.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_python_compiler_reads_what_msgfmt_reads(tmp_path):
    if shutil.which("msgfmt") is None:
        pytest.skip("msgfmt is not installed here to compare with")
    by_msgfmt = tmp_path / "msgfmt.mo"
    subprocess.run(["msgfmt", "-o", str(by_msgfmt), str(PO)], check=True)
    ours = tmp_path / "ours.mo"
    ours.write_bytes(_compiler().mo_bytes(_compiler().read_po(PO)))
    theirs = gettext.GNUTranslations(by_msgfmt.open("rb"))._catalog
    mine = gettext.GNUTranslations(ours.open("rb"))._catalog
    theirs.pop("", None), mine.pop("", None)  # the header: msgfmt rewrites its fields
    assert mine == theirs and len(mine) > 100


def _compiled(tmp_path, po_text: str) -> gettext.GNUTranslations:
    """`po_text` compiled by the Python compiler and loaded as gettext loads a catalogue."""
    po = tmp_path / "django.po"
    po.write_text(po_text, encoding="utf-8")
    compiler = _compiler()
    mo = tmp_path / "django.mo"
    mo.write_bytes(compiler.mo_bytes(compiler.read_po(po)))
    return gettext.GNUTranslations(mo.open("rb"))


def test_fuzzy_entries_are_left_out(tmp_path):
    translations = _compiled(
        tmp_path,
        'msgid ""\nmsgstr "Content-Type: text/plain; charset=UTF-8\\n"\n\n'
        'msgid "Kept"\nmsgstr "保留"\n\n#, fuzzy\nmsgid "Guess"\nmsgstr "猜的"\n',
    )
    assert translations.gettext("Kept") == "保留"
    assert translations.gettext("Guess") == "Guess"


def test_plural_entries_compile_to_every_form(tmp_path):
    translations = _compiled(
        tmp_path,
        'msgid ""\nmsgstr "Content-Type: text/plain; charset=UTF-8\\n"\n"Plural-Forms: nplurals=1; plural=0;\\n"\n\n'
        '#, python-format\nmsgid "%(count)d day"\nmsgid_plural "%(count)d days"\nmsgstr[0] "%(count)d 天"\n\n'
        'msgid "Kept"\nmsgstr "保留"\n',
    )
    assert translations.ngettext("%(count)d day", "%(count)d days", 1) == "%(count)d 天"
    assert translations.ngettext("%(count)d day", "%(count)d days", 5) == "%(count)d 天"
    assert translations.gettext("Kept") == "保留"
