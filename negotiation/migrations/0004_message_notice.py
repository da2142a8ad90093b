"""Message.notice: a server entry's stable code and values, rendered in the reader's language
(negotiation/server_entries.py). The rows written before it held only their Chinese text: it is read
back into a notice here, so an English reader reads them in English too; a text this does not
recognise keeps a null notice and reads as it was stored."""

import re

from django.db import migrations, models

# The texts these entries were written with (frozen here: the code that wrote them is gone).
_PRICED = [
    (re.compile(r"^出价 ¥(\d+)\.(\d\d)$"), "offer_made"),
    (re.compile(r"^卖家还价 ¥(\d+)\.(\d\d)$"), "offer_countered"),
    (re.compile(r"^已按 ¥(\d+)\.(\d\d) 成交，订单已生成$"), "offer_accepted"),
]
_FIXED = {
    "卖家拒绝了出价": {"code": "offer_declined", "reason": "seller_declined"},
    "买家拒绝了还价": {"code": "offer_declined", "reason": "buyer_declined"},
    "出价低于卖家底价，已自动拒绝": {"code": "offer_declined", "reason": "below_floor"},
    "商品已被买走，出价已失效": {"code": "offer_declined", "reason": "listing_sold"},
    "卖家已降价，出价已失效": {"code": "offer_declined", "reason": "price_changed"},
    "出价已被拒绝": {"code": "offer_declined", "reason": ""},
    "买家撤回了出价": {"code": "offer_withdrawn"},
    "出价已过期": {"code": "offer_expired"},
    "出价状态已更新": {"code": "offer_updated"},
    "商品已售出，此会话已关闭": {"code": "thread_closed"},
}


def notice_of(text: str) -> dict | None:
    if text in _FIXED:
        return dict(_FIXED[text])
    for pattern, code in _PRICED:
        match = pattern.match(text)
        if match:
            return {"code": code, "price": int(match[1]) * 100 + int(match[2])}
    return None


def forwards(apps, schema_editor):
    Message = apps.get_model("negotiation", "Message")
    rows = Message.objects.filter(kind__in=["offer", "system"], notice__isnull=True)
    batch = []
    for message in rows.only("id", "text").iterator(chunk_size=2000):
        message.notice = notice_of(message.text)
        if message.notice is not None:
            batch.append(message)
        if len(batch) >= 2000:
            Message.objects.bulk_update(batch, ["notice"])
            batch = []
    Message.objects.bulk_update(batch, ["notice"])


class Migration(migrations.Migration):
    dependencies = [
        ("negotiation", "0003_chat_images_private"),
    ]

    operations = [
        migrations.AddField(
            model_name="message",
            name="notice",
            field=models.JSONField(blank=True, default=None, null=True),
        ),
        # Backwards the column goes and the texts stay as they were.
        migrations.RunPython(forwards, migrations.RunPython.noop, elidable=True),
    ]
