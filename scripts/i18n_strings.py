"""Writes project/i18n_strings.py: the error messages and model labels people read that are not
marked for translation in the source (project/i18n.py explains), as gettext_noop calls, so that
`manage.py makemessages` finds them. `make messages` runs it before makemessages;
tests/project/test_translations.py fails when it is out of date.

    .venv/bin/python scripts/i18n_strings.py
"""

import os
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "project.settings")

import django  # noqa: E402

django.setup()

from project import i18n  # noqa: E402

TARGET = ROOT / "project" / "i18n_strings.py"


def main() -> None:
    strings = {text for text in i18n.strings_to_translate() if not i18n.is_exempt(text)}
    TARGET.write_text(i18n.catalogue_module(strings), encoding="utf-8")
    print(f"{TARGET.relative_to(ROOT)}: {len(strings)} strings")


if __name__ == "__main__":
    main()
