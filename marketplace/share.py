"""Share cards and mini-program codes for listings (GET /api/listings/{id}/share).

A listing spreads through WeChat groups as a share card (the picture `onShareAppMessage` shows:
cover, price, title) and as a mini-program code (wxacode.getUnlimited, `scene` = the listing id).
Both are files in the default storage, named after the listing and a digest of what they show
(price, title, cover): they are made once per version of the listing, reused by every reader,
and a price, title or cover change names new ones. Made on first request; a concurrent first
request makes the same names and one of the two writes is kept.
"""

import hashlib
import io
import logging
import re
from functools import cache

from django.conf import settings
from django.core.files.base import ContentFile
from django.core.files.storage import default_storage, storages
from PIL import Image, ImageDraw, ImageFont

from marketplace.gateways import wechat
from marketplace.media import storage_url
from marketplace.models import Listing
from marketplace.money import yuan

logger = logging.getLogger("marketplace.share")

CARD_SIZE = (500, 400)  # WeChat shows share cards at 5:4
CODE_WIDTH = 280  # the smallest code WeChat makes: enough for a card corner and for printing
# The scene is the listing id in decimal; WeChat allows 32 visible characters.
SCENE = re.compile(r"^[1-9][0-9]{0,17}$")


def listing_path(listing_id: int) -> str:
    """The page a share card opens (`onShareAppMessage`'s path)."""
    return f"{settings.SHARE_LISTING_PAGE}?id={listing_id}"


def listing_id_from_scene(scene: str) -> int | None:
    """The listing id a scanned code carries, or None for anything that is not one of ours."""
    scene = (scene or "").strip()
    return int(scene) if SCENE.match(scene) else None


def version_of(listing: Listing) -> str:
    shown = f"{listing.price_fen}\x1f{listing.title}\x1f{listing.cover}"
    return hashlib.sha256(shown.encode("utf-8")).hexdigest()[:16]


def share_assets(listing: Listing) -> dict[str, str]:
    """{title, image_url, path, code_url}; makes the card and the code when this version of the
    listing has none yet (the code through WeChat, so this may raise UpstreamUnavailable)."""
    version = version_of(listing)
    code_name = f"share/{listing.pk}-{version}-code.png"
    card_name = f"share/{listing.pk}-{version}-card.png"
    # The card is stored after its code, so an existing card means both exist: one lookup.
    if not default_storage.exists(card_name):
        code = _stored(code_name) or _made_code(listing, code_name)
        _store(card_name, compose_card(listing, Image.open(io.BytesIO(code))))
    return {
        "title": f"¥{yuan(listing.price_fen)} {listing.title}",
        "image_url": storage_url(card_name),
        "path": listing_path(listing.pk),
        "code_url": storage_url(code_name),
    }


def _stored(name: str) -> bytes | None:
    if not default_storage.exists(name):
        return None
    with default_storage.open(name, "rb") as stored:
        return stored.read()


def _made_code(listing: Listing, name: str) -> bytes:
    code = _as_png(
        wechat.mini_program_code(
            scene=str(listing.pk), page=settings.SHARE_LISTING_PAGE, width=CODE_WIDTH
        )
    )
    _store(name, code)
    return code


def _store(name: str, content: bytes) -> None:
    saved = default_storage.save(name, ContentFile(content))
    if saved != name:  # a concurrent first request stored it first: keep one copy
        default_storage.delete(saved)


def _as_png(image_bytes: bytes) -> bytes:
    """WeChat answers JPEG or PNG; cards and codes are stored as PNG whatever it sent."""
    image = Image.open(io.BytesIO(image_bytes))
    out = io.BytesIO()
    image.convert("RGB").save(out, format="PNG")
    return out.getvalue()


@cache
def _font(size: int) -> ImageFont.FreeTypeFont | ImageFont.ImageFont:
    try:
        return ImageFont.truetype(settings.SHARE_CARD_FONT, size)
    except OSError:
        # Without a CJK font Chinese titles render as boxes: the deploy checks warn about it.
        logger.warning("share card font %s missing", settings.SHARE_CARD_FONT)
        return ImageFont.load_default(size)


def _cover(listing: Listing) -> Image.Image | None:
    if not listing.cover:
        return None
    try:
        with storages["default"].open(listing.cover, "rb") as cover_file:
            image = Image.open(cover_file)
            image.load()
            return image.convert("RGB")
    except (OSError, ValueError):
        logger.warning("share card: cover %s of listing %s unreadable", listing.cover, listing.pk)
        return None


def _fit_title(draw: ImageDraw.ImageDraw, title: str, font, width: int) -> str:
    if draw.textlength(title, font=font) <= width:
        return title
    while title and draw.textlength(title + "…", font=font) > width:
        title = title[:-1]
    return title + "…"


def compose_card(listing: Listing, code: Image.Image) -> bytes:
    """Cover on the left, price and title beside it, the mini-program code in the corner."""
    width, height = CARD_SIZE
    card = Image.new("RGB", CARD_SIZE, "white")
    cover = _cover(listing)
    if cover is not None:
        cover.thumbnail((width, height - 110))
        card.paste(cover, ((width - cover.width) // 2, 0))
    else:
        ImageDraw.Draw(card).rectangle((0, 0, width, height - 110), fill="#f2f2f2")
    draw = ImageDraw.Draw(card)
    draw.rectangle((0, height - 110, width, height), fill="white")
    draw.text((20, height - 100), f"¥{yuan(listing.price_fen)}", fill="#e4393c", font=_font(40))
    title_font = _font(24)
    draw.text(
        (20, height - 45),
        _fit_title(draw, listing.title, title_font, width - 130),
        fill="#333333",
        font=title_font,
    )
    corner = code.convert("RGB").resize((96, 96))
    card.paste(corner, (width - 106, height - 104))
    out = io.BytesIO()
    card.save(out, format="PNG", optimize=True)
    return out.getvalue()
