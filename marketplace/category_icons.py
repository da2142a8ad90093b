"""Generated category icons: a coloured disc with the category's first character, for the
categories that staff have not given an uploaded icon yet (the seeded ones)."""

import hashlib
import io

from django.conf import settings
from django.core.files.base import ContentFile
from PIL import Image, ImageDraw, ImageFont

from marketplace.models import Category

ICON_SIDE = 128
PALETTE = [(239, 83, 80), (66, 165, 245), (102, 187, 106), (255, 167, 38), (171, 71, 188),
           (38, 166, 154), (236, 64, 122), (92, 107, 192)]  # fmt: skip


def _font(size: int) -> ImageFont.FreeTypeFont | ImageFont.ImageFont:
    try:
        return ImageFont.truetype(settings.SHARE_CARD_FONT, size)
    except OSError:
        return ImageFont.load_default(size)


def draw_icon(name: str) -> bytes:
    """A PNG: the same name always gives the same icon (its colour from the name's hash)."""
    colour = PALETTE[hashlib.sha256(name.encode("utf-8")).digest()[0] % len(PALETTE)]
    image = Image.new("RGBA", (ICON_SIDE, ICON_SIDE), (0, 0, 0, 0))
    draw = ImageDraw.Draw(image)
    draw.ellipse((4, 4, ICON_SIDE - 4, ICON_SIDE - 4), fill=colour)
    glyph = (name.strip() or "?")[0]
    draw.text(
        (ICON_SIDE / 2, ICON_SIDE / 2), glyph, fill=(255, 255, 255), font=_font(64), anchor="mm"
    )
    out = io.BytesIO()
    image.save(out, "PNG", optimize=True)
    return out.getvalue()


def give_generated_icons(categories: list[Category] | None = None) -> int:
    """Gives every category without an icon a generated one, through the storage API; returns
    how many. Uploaded icons are never replaced."""
    given = 0
    for category in categories if categories is not None else Category.objects.filter(icon=""):
        if category.icon:
            continue
        category.icon.save(f"category-{category.pk}.png", ContentFile(draw_icon(category.name)))
        given += 1
    return given
