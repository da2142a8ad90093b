"""Share cards and mini-program codes: wechatpy against the sandbox's getwxacodeunlimit, a card
composed with Pillow, one pair per version of the listing, a landing that never fails."""

import io

import pytest
from django.core.files.base import ContentFile
from django.core.files.storage import default_storage
from PIL import Image

from marketplace import share
from marketplace.models import Listing, ListingStatus
from sandbox import transport
from sandbox import wechat as sandbox_wechat
from tests.conftest import assert_error
from tests.marketplace.catalog_factories import category_tree, image_bytes, make_listing

pytestmark = pytest.mark.django_db


@pytest.fixture
def listing():
    listing = make_listing(category=category_tree()["apple"], title="九成新 iPhone 13 国行", price_fen=280_000)
    cover = default_storage.save("listings/test/share-cover.jpg", ContentFile(image_bytes(size=(400, 300))))
    Listing.objects.filter(pk=listing.pk).update(cover=cover)
    listing.cover = cover
    return listing


def fetch(url: str) -> bytes:
    """A media URL of the response, read back from storage (the test server serves no media)."""
    name = url.split("/media/", 1)[1]
    with default_storage.open(name, "rb") as stored:
        return stored.read()


def test_the_share_endpoint_returns_a_card_a_code_and_the_listing_path(anon, listing, settings):
    body = anon.get(f"/api/listings/{listing.pk}/share").json()

    assert body["title"] == "¥2800.00 九成新 iPhone 13 国行"
    assert body["path"] == f"{settings.SHARE_LISTING_PAGE}?id={listing.pk}"
    card = Image.open(io.BytesIO(fetch(body["image_url"])))
    code = Image.open(io.BytesIO(fetch(body["code_url"])))
    assert card.size == share.CARD_SIZE and card.format == "PNG"
    assert code.size == (share.CODE_WIDTH, share.CODE_WIDTH)
    rgb = card.convert("RGB")
    # The cover (red, from image_bytes; JPEG moves it a little) above the price and title.
    assert all(abs(a - b) <= 8 for a, b in zip(rgb.getpixel((250, 100)), (200, 30, 30), strict=True))
    title_band = rgb.crop((20, share.CARD_SIZE[1] - 45, 300, share.CARD_SIZE[1] - 15))
    assert sum(title_band.convert("L").histogram()[:120]) > 200  # dark text drawn there


def test_the_code_is_asked_of_wechat_once_per_version_of_the_listing(anon, listing, monkeypatch):
    calls = []
    original = sandbox_wechat.get_wxa_code_unlimited

    def counting(request):
        response = original(request)
        # Count the codes made, not the calls: wechatpy retries once with a new access token
        # when the cached one is refused (the sandbox forgets tokens between tests).
        if response.headers.get("Content-Type") == "image/png":
            calls.append(request.json())
        return response

    monkeypatch.setitem(
        transport._routes, (sandbox_wechat.HOST, "POST", "/wxa/getwxacodeunlimit"), counting
    )
    first = anon.get(f"/api/listings/{listing.pk}/share").json()
    again = anon.get(f"/api/listings/{listing.pk}/share").json()
    assert first == again
    assert len(calls) == 1
    assert calls[0]["scene"] == str(listing.pk)
    assert calls[0]["page"] == "pages/listings/detail"
    assert calls[0]["env_version"] == "release" and calls[0]["check_path"] is True

    Listing.objects.filter(pk=listing.pk).update(price_fen=250_000)
    cheaper = anon.get(f"/api/listings/{listing.pk}/share").json()
    assert len(calls) == 2
    assert cheaper["image_url"] != first["image_url"]
    assert cheaper["title"].startswith("¥2500.00")


def test_a_development_build_gets_codes_for_its_own_pages(anon, listing, settings, monkeypatch):
    settings.WECHAT_MINIPROGRAM_ENV = "develop"
    seen = []
    original = sandbox_wechat.get_wxa_code_unlimited
    monkeypatch.setitem(
        transport._routes,
        (sandbox_wechat.HOST, "POST", "/wxa/getwxacodeunlimit"),
        lambda request: seen.append(request.json()) or original(request),
    )
    assert anon.get(f"/api/listings/{listing.pk}/share").status_code == 200
    assert seen[0]["env_version"] == "develop" and seen[0]["check_path"] is False


@pytest.mark.parametrize("status", [ListingStatus.PENDING_REVIEW, ListingStatus.OFF_SHELF])
def test_an_unpublished_listing_cannot_be_shared(anon, listing, status):
    Listing.objects.filter(pk=listing.pk).update(status=status)
    assert_error(anon.get(f"/api/listings/{listing.pk}/share"), 404, "listing_not_found")


def test_wechat_refusing_the_code_is_a_503_not_a_500(anon, listing, settings):
    settings.SHARE_LISTING_PAGE = "/pages/listings/detail"  # WeChat refuses a leading slash
    assert_error(anon.get(f"/api/listings/{listing.pk}/share"), 503, "upstream_unavailable")


@pytest.mark.parametrize(
    "scene", ["", "abc", "0", "-1", "9" * 40, "1 OR 1=1", "%E5%8C%85", "１２３", "12\n3"]
)
def test_the_landing_of_a_bad_scene_is_the_home_page(anon, settings, scene):
    body = anon.get("/api/share/landing", {"scene": scene}).json()
    assert body == {"path": settings.SHARE_HOME_PAGE, "listing_id": None}


def test_the_landing_of_a_listing_code_opens_it_and_of_a_gone_one_home(anon, listing, settings):
    body = anon.get("/api/share/landing", {"scene": str(listing.pk)}).json()
    assert body == {"path": f"{settings.SHARE_LISTING_PAGE}?id={listing.pk}", "listing_id": listing.pk}
    Listing.objects.filter(pk=listing.pk).update(status=ListingStatus.OFF_SHELF)
    gone = anon.get("/api/share/landing", {"scene": str(listing.pk)}).json()
    assert gone["listing_id"] is None
    assert anon.get("/api/share/landing", {"scene": "999999999"}).json()["listing_id"] is None
