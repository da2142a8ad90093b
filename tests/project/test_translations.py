"""Issue 18: Chinese for the people who read it. Every message a user can see and every label
staff see comes in Simplified Chinese through Django's translation machinery, English when the
client sends Accept-Language: en; machine codes never change. Fails on any user-visible string
without a translation (project/i18n.py says how they are found)."""

import ast
import re
from pathlib import Path

import pytest
from django.conf import settings
from django.test import Client
from django.utils import timezone, translation

from project import i18n
from realtime.models import Event
from realtime.notices import message_for
from tests.conftest import assert_error
from tests.factories import StaffFactory
from tests.marketplace.order_helpers import listing_on_sale

PO = Path(settings.BASE_DIR) / "locale" / "zh_Hans" / "LC_MESSAGES" / "django.po"
MO = PO.with_suffix(".mo")
GENERATED = Path(settings.BASE_DIR) / "project" / "i18n_strings.py"


def _catalogue() -> dict[str, str]:
    """msgid → msgstr of the .po (fuzzy entries count as untranslated)."""
    text = PO.read_text(encoding="utf-8")
    entries = {}
    # A fuzzy entry may carry more flags ("#, fuzzy, python-format") and the msgid it was
    # guessed from ("#| msgid ..."): it is still a guess, not a translation.
    pattern = r'^(?:#, (.*)\n)?(?:#\|.*\n)*msgid ((?:".*"\n)+)msgstr ((?:".*"\n)+)'
    for flags, msgid, msgstr in re.findall(pattern, text, flags=re.M):
        fuzzy = "fuzzy" in flags
        join = lambda block: "".join(re.findall(r'^"(.*)"$', block, re.M))  # noqa: E731
        if join(msgid):
            entries[join(msgid).replace('\\"', '"')] = "" if fuzzy else join(msgstr)
    return entries


def test_the_catalogue_is_compiled_in_the_build():
    assert MO.exists() and MO.stat().st_mtime >= PO.stat().st_mtime, (
        "locale/zh_Hans/LC_MESSAGES/django.mo is missing or older than the .po: run make messages"
    )


def test_every_msgid_in_the_catalogue_is_translated():
    untranslated = [msgid for msgid, msgstr in _catalogue().items() if not msgstr]
    assert untranslated == [], "translate these in locale/zh_Hans/LC_MESSAGES/django.po"


def test_no_message_is_built_so_that_it_cannot_be_translated():
    _, unfit = i18n.source_messages()
    assert unfit == [], (
        "an error message is an f-string or a concatenation: write an English template with "
        "%(name)s placeholders and pass params={...} (marketplace/errors.py)"
    )


def test_the_generated_list_of_unmarked_strings_is_up_to_date():
    strings = {text for text in i18n.strings_to_translate() if not i18n.is_exempt(text)}
    assert GENERATED.read_text(encoding="utf-8") == i18n.catalogue_module(strings), (
        "run make catalogue (scripts/i18n_strings.py, then makemessages) and translate"
    )


def test_every_user_visible_string_has_a_chinese_translation():
    catalogue = _catalogue()
    missing = sorted(
        text
        for text in i18n.strings_to_translate()
        if not i18n.is_exempt(text) and not catalogue.get(text)
    )
    assert missing == [], "run make catalogue and translate these"
    with translation.override("zh-hans"):
        untranslated = [
            text
            for text in i18n.strings_to_translate()
            if not i18n.is_exempt(text)
            and translation.gettext(text) == text
            and catalogue.get(text) != text  # the same in both on purpose: ID, openid
        ]
    assert untranslated == [], "in the .po but not in the compiled .mo: run make messages"


# --- through HTTP -----------------------------------------------------------------------------


@pytest.mark.django_db
def test_a_chinese_client_reads_chinese_errors_and_an_english_one_english(make_client):
    client = make_client()
    chinese = client.get("/api/orders/M000", headers={"Accept-Language": "zh-CN,zh;q=0.9"})
    default = client.get("/api/orders/M000")
    english = client.get("/api/orders/M000", headers={"Accept-Language": "en"})
    assert assert_error(chinese, 404, "order_not_found")["message"] == "订单不存在。"
    assert assert_error(default, 404, "order_not_found")["message"] == "订单不存在。"
    assert assert_error(english, 404, "order_not_found")["message"] == "No such order."


@pytest.mark.django_db
def test_templated_messages_are_translated_with_their_values(make_client):
    listing = listing_on_sale(price_fen=10_000)
    buyer = make_client()
    url = f"/api/listings/{listing.pk}/offers"
    chinese = assert_error(buyer.post(url, {"price": 20_000}), 422, "price_not_below_listing")
    english = assert_error(
        buyer.post(url, {"price": 20_000}, headers={"Accept-Language": "en"}), 422
    )
    assert chinese["message"] == "出价必须低于商品价格（10000 分）；否则请直接购买。"
    assert english["message"].startswith("An offer must be below the listing price (10000 fen)")


@pytest.mark.django_db
def test_unauthenticated_and_unknown_endpoint_answers_are_chinese(anon):
    assert assert_error(anon.get("/api/me"), 401)["message"].startswith("请先登录")
    assert assert_error(anon.get("/api/no-such-thing"), 404)["message"] == "接口不存在。"


@pytest.mark.django_db
def test_staff_read_the_admin_in_chinese_and_in_english_on_request():
    listing_on_sale(title="有一件商品，操作栏才出现")
    client = Client()
    client.force_login(StaffFactory())
    page = client.get("/admin/marketplace/order/").content.decode()
    assert "订单" in page and "状态" in page
    listing_page = client.get("/admin/marketplace/listing/").content.decode()
    assert "通过所选商品" in listing_page  # the approve action
    assert "成色" in listing_page and "运费（元）" in listing_page
    english = client.get("/admin/marketplace/listing/", HTTP_ACCEPT_LANGUAGE="en").content.decode()
    assert "Approve the selected listings" in english
    dashboard = client.get("/admin/").content.decode()
    assert "待审核商品" in dashboard and "待处理纠纷" in dashboard


def test_subscribe_messages_are_written_in_chinese():
    settings_ids = {"WECHAT_TEMPLATE_OFFER_ANSWERED": "tpl-offer"}
    with translation.override("en"), pytest.MonkeyPatch.context() as patch:
        for name, value in settings_ids.items():
            patch.setattr(settings, name, value)
        event = Event(
            type="offer.accepted", data={"id": 7, "price": 9_900}, created_at=timezone.now()
        )
        message = message_for(event)
    assert message["data"]["phrase3"]["value"] == "已接受"
    assert message["data"]["thing2"]["value"] == "出价 99.00 元"


# --- the admin's own text (project/i18n.py: admin_text_problems, admin_template_problems) ------


def test_every_admin_message_title_and_label_goes_through_the_catalogue():
    problems = i18n.admin_text_problems()
    assert problems == [], (
        "staff read these as written: wrap them in gettext / gettext_lazy (a value in the text: "
        '_("… %(name)s …") % {...}), then make catalogue and translate'
    )


def test_the_admin_code_writes_no_chinese_outside_the_catalogue():
    problems = i18n.admin_chinese_problems()
    assert problems == [], (
        "an English reader would read these in Chinese: write the English text in gettext / "
        "gettext_lazy with the Chinese as its zh_Hans msgstr (or, for text that must stay "
        "Chinese, add the call or name to i18n.CJK_EXCEPTIONS with why)"
    )


def test_the_custom_admin_templates_have_no_text_outside_translate_tags():
    problems = i18n.admin_template_problems()
    assert problems == [], (
        "wrap these in {% translate %} / {% blocktranslate %} ({% load i18n %}), then make "
        "catalogue and translate"
    )


def test_the_scanners_find_what_they_look_for():
    # The checks above pass on a clean tree only if they can fail: these would be found.
    found = list(
        i18n._admin_texts(
            ast.parse(
                'self.message_user(request, f"{n} done")\n'
                'context = {"title": "Reject listings"}\n'
                'format_html(\'<a class="button" href="{}">Settle</a>\', url)\n'
                'format_html(\'<a href="{}">{}</a>\', url, _("Settle"))\n'
            )
        )
    )
    assert sorted(why for _, why in found) == [
        "format_html() visible text",
        "message_user() text",
        'page "title"',
    ]
    chinese = i18n._chinese_literals(
        ast.parse(
            '"""文档"""\n'
            'LABEL = "微信零钱"\n'
            'raise BankFileError(f"找不到“{what}”列")\n'
            'gettext("已翻译")\n'
            'Column("编号", lambda w: w.pk)\n'
        )
    )
    assert [node.value for node in chinese] == ["微信零钱", "找不到“", "”列"]
    assert i18n._template_texts(
        '{% load i18n %}<p>{% translate "Fine" %}</p><th>day</th>'
        '<input type="submit" value="Show"><input type="hidden" value="code">'
    ) == ["Show", "day"]
