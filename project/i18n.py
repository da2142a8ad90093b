"""Chinese for the people who read it (docs/fixes.md "Translations").

Users and staff read Simplified Chinese unless the client sends `Accept-Language: en`; the
source text is English and the catalogue is locale/zh_Hans/LC_MESSAGES/django.po. Three kinds
of text reach people and each is translated in one place:

- error messages: `DomainError.message` (marketplace/errors.py) and the API's, the middleware's
  and the socket's own error bodies are translated when the body is made, so the thousand raise
  sites keep plain English literals;
- the admin's labels: model and field names and help texts are made lazy translations when the
  apps are ready (`translate_model_labels`), so no model changes and no migration follows;
  actions, columns, filters and dashboard tiles are `gettext_lazy` in the admin modules;
- subscribe messages (realtime/notices.py) are written in the default language.

Error messages and model labels are not marked in the source, so `manage.py makemessages`
would not find them: `strings_to_translate()` does (an AST walk of the raise sites and a walk of
the models), `scripts/i18n_strings.py` writes them to project/i18n_strings.py as
`gettext_noop` calls for makemessages, and tests/project/test_translations.py fails on any of
them without a Chinese translation.
"""

import ast
import re
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

from django.apps import apps
from django.conf import settings
from django.utils.translation import gettext_lazy, override

# Our packages: what users and staff read comes from these.
PACKAGES = ("marketplace", "negotiation", "realtime", "project")
APP_LABELS = ("marketplace", "negotiation", "realtime")
# Functions and classes whose argument at this position is a message someone reads.
MESSAGE_SINKS = {
    "_error": 3,  # project/api.py
    "error_response": 2,  # project/middleware.py
    "FrameError": 1,  # realtime/consumers.py
    "_send_error": 2,
    "_invalid": 1,  # marketplace/actions/wallet.py
}
CJK = re.compile(r"[\u3400-\u9fff]")
# The English texts translate_model_labels made lazy (they are no longer plain afterwards).
_WRAPPED: set[str] = set()
_WRAPPED_PLURALS: dict[type, bool] = {}


def _domain_error_names() -> set[str]:
    """DomainError and every subclass defined anywhere in our packages (by class name)."""
    names = {"DomainError"}
    changed = True
    trees = list(_trees())
    while changed:
        changed = False
        for _, tree in trees:
            for node in ast.walk(tree):
                if isinstance(node, ast.ClassDef) and node.name not in names:
                    bases = {_name(base) for base in node.bases}
                    if bases & names:
                        names.add(node.name)
                        changed = True
    return names


def _name(node: ast.AST) -> str | None:
    if isinstance(node, ast.Name):
        return node.id
    if isinstance(node, ast.Attribute):
        return node.attr
    return None


def _trees() -> Iterator[tuple[Path, ast.AST]]:
    root = Path(settings.BASE_DIR)
    for package in PACKAGES:
        for path in sorted((root / package).rglob("*.py")):
            if "migrations" in path.parts or path.name == "i18n_strings.py":
                continue
            yield path, ast.parse(path.read_text(encoding="utf-8"), filename=str(path))


def source_messages() -> tuple[set[str], list[str]]:
    """(the literal messages of every error raised or answered, the places where a message is
    built some other way: an f-string or a concatenation cannot be looked up in a catalogue)."""
    errors = _domain_error_names()
    found: set[str] = set()
    unfit: list[str] = []
    for path, tree in _trees():
        for node in ast.walk(tree):
            if isinstance(node, ast.ClassDef) and {_name(b) for b in node.bases} & errors:
                for item in node.body:
                    if (
                        isinstance(item, ast.Assign)
                        and any(getattr(t, "id", "") == "message" for t in item.targets)
                        and isinstance(item.value, ast.Constant)
                        and isinstance(item.value.value, str)
                    ):
                        found.add(item.value.value)
            if not isinstance(node, ast.Call):
                continue
            callee = _name(node.func)
            if callee in errors:
                position = 0
            elif callee in MESSAGE_SINKS:
                position = MESSAGE_SINKS[callee]
            else:
                continue
            argument = node.args[position] if len(node.args) > position else None
            if argument is None:
                argument = next((k.value for k in node.keywords if k.arg == "message"), None)
            if argument is None:
                continue
            if isinstance(argument, ast.BinOp) and _marked_literal(argument.left):
                continue  # gettext("... %(name)s ...") % {...}: makemessages finds it
            if isinstance(argument, ast.Constant) and isinstance(argument.value, str):
                found.add(argument.value)
            elif isinstance(argument, ast.JoinedStr | ast.BinOp):
                unfit.append(f"{path.relative_to(settings.BASE_DIR)}:{node.lineno}")
    return found, unfit


def _marked_literal(node: ast.AST) -> bool:
    return (
        isinstance(node, ast.Call)
        and _name(node.func) in {"gettext", "gettext_lazy", "_"}
        and bool(node.args)
        and isinstance(node.args[0], ast.Constant)
    )


def _plain(value: object) -> str | None:
    """The English text of a label that is still a plain string (not yet a translation)."""
    if isinstance(value, str) and value and not CJK.search(value):
        return value
    return None


def _labels() -> Iterator[tuple[Any, str, Any]]:
    """(owner, attribute, English text) of every model label staff see in our apps."""
    for label in APP_LABELS:
        config = apps.get_app_config(label)
        yield config, "verbose_name", config.verbose_name
        for model in config.get_models():
            opts = model._meta
            yield opts, "verbose_name", opts.verbose_name
            plural = opts.verbose_name_plural
            if "verbose_name_plural" not in opts.original_attrs and not _WRAPPED_PLURALS.get(model):
                # Django's default plural is a lazy "<name>s": its English text, as a plain
                # string, is what the catalogue translates.
                with override(None):
                    plural = str(plural)
            yield opts, "verbose_name_plural", plural
            for field in [*opts.fields, *opts.many_to_many]:
                yield field, "verbose_name", field.verbose_name
                yield field, "help_text", getattr(field, "help_text", "")


def _choice_labels() -> Iterator[tuple[Any, Any]]:
    for label in APP_LABELS:
        for model in apps.get_app_config(label).get_models():
            for field in model._meta.fields:
                if field.choices:
                    yield field, field.choices


def translate_model_labels() -> None:
    """Makes every plain label of our models a lazy translation (once, when apps are ready).
    Migrations record the constructor's arguments (`_verbose_name`), not these, so none
    follows; a label already written in Chinese is left alone."""
    for owner, attribute, value in list(_labels()):
        text = _plain(value)
        if text is not None:
            _WRAPPED.add(text)
            setattr(owner, attribute, gettext_lazy(text))
            if attribute == "verbose_name_plural":
                _WRAPPED_PLURALS[owner.model] = True
    for field, choices in list(_choice_labels()):
        wrapped = []
        for value, label in choices:
            text = _plain(label)
            if text is not None:
                _WRAPPED.add(text)
                label = gettext_lazy(text)
            wrapped.append((value, label))
        field.choices = wrapped


def model_labels() -> set[str]:
    """The English text of every label of our models (Django's own, such as the user's
    inherited fields, come translated with Django)."""
    texts = set(_WRAPPED)
    texts.update(text for _, _, value in _labels() if (text := _plain(value)))
    for _, choices in _choice_labels():
        texts.update(text for _, label in choices if (text := _plain(label)))
    return texts


def strings_to_translate() -> set[str]:
    """Every text the catalogue must have that makemessages cannot find by itself."""
    return source_messages()[0] | model_labels()


def catalogue_module(strings: Iterable[str]) -> str:
    """project/i18n_strings.py: the strings above as gettext_noop calls, for makemessages."""
    lines = [
        '"""Generated by scripts/i18n_strings.py (project/i18n.py explains): strings that reach',
        'users and staff without being marked in the source. Never imported; edit nothing here."""',
        "",
        "from django.utils.translation import gettext_noop",
        "",
        "STRINGS = [",
    ]
    lines += [f"    gettext_noop({text!r})," for text in sorted(strings)]
    lines += ["]", ""]
    return "\n".join(lines)


def is_exempt(text: str) -> bool:
    """Text that needs no translation: already Chinese, or no words at all (a symbol, an id)."""
    return bool(CJK.search(text)) or not re.search(r"[A-Za-z]{2,}", text)


# --- what staff read in the admin -------------------------------------------------------------

# The admin's Python modules and its custom templates (the admin's own come translated).
ADMIN_MODULES = (
    "marketplace/admin/*.py",
    "negotiation/admin.py",
    "negotiation/*_admin.py",
    "realtime/admin.py",
)
ADMIN_TEMPLATES = ("marketplace/templates/admin/**/*.html", "project/templates/admin/**/*.html")
_GETTEXT = {
    "gettext",
    "gettext_lazy",
    "_",
    "ngettext",
    "ngettext_lazy",
    "pgettext",
    "pgettext_lazy",
    "gettext_noop",
}
# Keyword arguments whose value staff read as a label.
_LABEL_KEYWORDS = {
    "description",
    "short_description",
    "label",
    "help_text",
    "title",
    "empty_value_display",
    "empty_label",
    "verbose_name",
    "detail",
}
# Names a text is put in before it reaches one of the above (a dashboard tile's detail).
_LABEL_NAMES = {"title", "detail", "label", "message"}
# Class attributes staff read (a list filter's title, an admin's empty value).
_LABEL_ATTRIBUTES = {"title", "short_description", "empty_value_display"}
# Calls whose text argument (at this position) is a message staff read.
_ADMIN_SINKS = {
    "message_user": 1,
    "Tile": 0,
    "ValidationError": 0,
    "debug": 1,
    "info": 1,
    "success": 1,
    "warning": 1,
    "error": 1,
}
_PROSE = re.compile(r"[A-Za-z]{2,}")


def _visible(text: str) -> bool:
    """Words someone reads (English or Chinese), with HTML tags and {} placeholders removed."""
    text = re.sub(r"<[^>]*>|\{[^}]*\}|&\w+;", " ", text)
    return bool(CJK.search(text) or _PROSE.search(text))


def _literal(node: ast.AST | None) -> bool:
    """A text that reaches staff as it is written: a literal, an f-string, a concatenation or a
    `%`/.format() of a literal (a marked `gettext(...) % {...}` is fine)."""
    if node is None:
        return False
    if isinstance(node, ast.Constant):
        return isinstance(node.value, str) and _visible(node.value)
    if isinstance(node, ast.JoinedStr):
        return True
    if isinstance(node, ast.BinOp):
        return not _marked_literal(node.left) and (_literal(node.left) or _literal(node.right))
    if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute):
        return node.func.attr == "format" and _literal(node.func.value)
    return False


def admin_text_problems() -> list[str]:
    """Places in the admin modules where staff would read a text that is not looked up in the
    catalogue: a message_user/messages.* text, a page "title", a label keyword or attribute,
    the visible text of format_html, a (value, label) choice of a filter."""
    root = Path(settings.BASE_DIR)
    problems = []
    for pattern in ADMIN_MODULES:
        for path in sorted(root.glob(pattern)):
            tree = ast.parse(path.read_text(encoding="utf-8"))
            for node, why in _admin_texts(tree):
                problems.append(f"{path.relative_to(root)}:{getattr(node, 'lineno', 0)}: {why}")
    return problems


def _admin_texts(tree: ast.AST) -> Iterator[tuple[ast.AST, str]]:
    marked: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Call) and _name(node.func) in _GETTEXT:
            marked.update(id(sub) for arg in node.args for sub in ast.walk(arg))
    for node in ast.walk(tree):
        if isinstance(node, ast.Call):
            callee = _name(node.func)
            if callee in _ADMIN_SINKS:
                position = _ADMIN_SINKS[callee]
                argument = node.args[position] if len(node.args) > position else None
                if callee in {"debug", "info", "warning", "error", "success"} and not (
                    isinstance(node.func, ast.Attribute) and _name(node.func.value) == "messages"
                ):
                    argument = None  # a logger, not a message to staff
                if _literal(argument):
                    yield node, f"{callee}() text"
            if callee in {"format_html", "format_html_join"} and node.args:
                template = node.args[1 if callee == "format_html_join" else 0]
                if _literal(template) and id(template) not in marked:
                    yield node, f"{callee}() visible text"
            for keyword in node.keywords:
                if keyword.arg in _LABEL_KEYWORDS and _literal(keyword.value):
                    yield node, f"{keyword.arg}= label"
        elif isinstance(node, ast.Assign) and isinstance(node.value, ast.Constant | ast.JoinedStr):
            names = {getattr(target, "id", None) for target in node.targets}
            if names & _LABEL_NAMES and _literal(node.value):
                yield node, "label put in a variable"
        elif isinstance(node, ast.Dict):
            for key, value in zip(node.keys, node.values, strict=True):
                if isinstance(key, ast.Constant) and key.value == "title" and _literal(value):
                    yield node, 'page "title"'
        elif isinstance(node, ast.ClassDef):
            for item in node.body:
                if (
                    isinstance(item, ast.Assign)
                    and any(getattr(t, "id", "") in _LABEL_ATTRIBUTES for t in item.targets)
                    and _literal(item.value)
                ):
                    yield item, "class label attribute"
        elif isinstance(node, ast.FunctionDef) and node.name == "lookups":
            for sub in ast.walk(node):
                if (
                    isinstance(sub, ast.Tuple)
                    and len(sub.elts) == 2
                    and _literal(sub.elts[1])
                    and id(sub.elts[1]) not in marked
                ):
                    yield sub, "filter choice label"


# Chinese written into the admin's code on purpose, by the call or the name it is given to.
CJK_EXCEPTIONS = {
    "Column": "export column headers: the bank-result upload reads these Chinese headers back",
    "header_column": "the export's Chinese header a bank file is searched for",
    "ID_HEADERS": "headers a bank file may name its columns by",
    "AMOUNT_HEADERS": "headers a bank file may name its columns by",
    "REFERENCE_HEADERS": "headers a bank file may name its columns by",
    "log_change": "history messages are stored once, as written",
}


def admin_chinese_problems() -> list[str]:
    """Chinese literals in the admin modules outside a gettext call (an English reader would
    read Chinese), docstrings and the CJK_EXCEPTIONS left out."""
    root = Path(settings.BASE_DIR)
    problems = []
    for pattern in ADMIN_MODULES:
        for path in sorted(root.glob(pattern)):
            tree = ast.parse(path.read_text(encoding="utf-8"))
            for node in _chinese_literals(tree):
                problems.append(f"{path.relative_to(root)}:{node.lineno}: {node.value!r}")
    return problems


def _chinese_literals(tree: ast.AST) -> Iterator[ast.Constant]:
    skipped: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Expr):
            skipped.add(id(node.value))  # a docstring or a bare string is read by nobody
        elif isinstance(node, ast.Call) and _name(node.func) in _GETTEXT | set(CJK_EXCEPTIONS):
            skipped.update(id(sub) for arg in node.args for sub in ast.walk(arg))
        elif isinstance(node, ast.Assign) and any(
            getattr(target, "id", None) in CJK_EXCEPTIONS for target in node.targets
        ):
            skipped.update(id(sub) for sub in ast.walk(node.value))
    for node in ast.walk(tree):
        if (
            isinstance(node, ast.Constant)
            and isinstance(node.value, str)
            and CJK.search(node.value)
            and id(node) not in skipped
        ):
            yield node


def admin_template_problems() -> list[str]:
    """Text in the custom admin templates outside {% translate %} / {% blocktranslate %}:
    what is left once tags, variables, comments, styles and scripts are taken out, and the
    button and tooltip attributes."""
    root = Path(settings.BASE_DIR)
    problems = []
    for pattern in ADMIN_TEMPLATES:
        for path in sorted(root.glob(pattern)):
            for text in _template_texts(path.read_text(encoding="utf-8")):
                problems.append(f"{path.relative_to(root)}: {text!r}")
    return problems


def _template_texts(source: str) -> list[str]:
    drop = [
        r"{% *comment *%}.*?{% *endcomment *%}",
        r"{#.*?#}",
        r"<!--.*?-->",
        r"<(style|script)\b.*?</\1>",
        r"{% *blocktrans(late)?\b.*?{% *endblocktrans(late)? *%}",
        r"{% *trans(late)?\b.*?%}",
    ]
    for pattern in drop:
        source = re.sub(pattern, " ", source, flags=re.S)
    found = []
    # What a button says or a tooltip shows (a hidden input's value is a code).
    for tag in re.findall(r"<[^>]*>", source, flags=re.S):
        hidden = re.search(r'type="hidden"', tag)
        for attribute, value in re.findall(r'\b(value|title|placeholder|alt)="([^"]*)"', tag):
            value = re.sub(r"{{.*?}}|{%.*?%}", " ", value)
            if not (attribute == "value" and hidden) and _visible(value):
                found.append(value.strip())
    text = re.sub(r"<[^>]*>", "\n", source, flags=re.S)
    text = re.sub(r"{{.*?}}|{%.*?%}", "\n", text, flags=re.S)
    for line in text.splitlines():
        if _visible(line):
            found.append(line.strip())
    return found


__all__ = [
    "CJK_EXCEPTIONS",
    "admin_chinese_problems",
    "admin_template_problems",
    "admin_text_problems",
    "catalogue_module",
    "is_exempt",
    "model_labels",
    "source_messages",
    "strings_to_translate",
    "translate_model_labels",
]
