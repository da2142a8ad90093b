"""Catalog: categories, banners, home, search, listing detail, publishing and image uploads."""

import hashlib
import json
from collections.abc import Callable
from typing import Annotated, Literal

from django.core.cache import cache
from django.http import HttpRequest, HttpResponse
from ninja import File, Query, Router, Schema, Status
from ninja.files import UploadedFile
from pydantic import Field, StringConstraints, field_validator

from marketplace import storefront
from marketplace.actions import catalog as catalog_actions
from marketplace.actions import uploads as upload_actions
from marketplace.api.accounts import CityCode, StrictSchema, optional_viewer
from marketplace.errors import InvalidInput, NotFound, PayloadTooLarge
from marketplace.media import storage_url
from marketplace.models import ListingStatus, User
from marketplace.models.catalog import (
    MAX_DESCRIPTION_LENGTH,
    MAX_FEATURES,
    MAX_IMAGES,
    MAX_PRICE_FEN,
    MAX_SHIPPING_FEE_FEN,
    MAX_TITLE_LENGTH,
    PUBLIC_DETAIL_STATUSES,
    ListingCondition,
)
from marketplace.pagination import DEFAULT_LIMIT, MAX_LIMIT, page_schema
from marketplace.representations import listing_detail_data
from marketplace.selectors import (
    LISTING_SORTS,
    active_banners,
    category_ids_under,
    category_tree,
    home_data,
    is_favorite,
    listing_for_viewer,
    listings_of_seller,
    search_listings,
)
from project.client_address import client_address
from project.ratelimit import RateLimit
from project.wire import API_RENDERER, WireDateTime

router = Router(tags=["catalog"])

Title = Annotated[
    str, StringConstraints(strip_whitespace=True, min_length=1, max_length=MAX_TITLE_LENGTH)
]
Description = Annotated[
    str, StringConstraints(strip_whitespace=True, min_length=1, max_length=MAX_DESCRIPTION_LENGTH)
]
PriceFen = Annotated[int, Field(ge=1, le=MAX_PRICE_FEN, description="Integer fen (1 yuan = 100).")]
ShippingFee = Annotated[
    int, Field(ge=0, le=MAX_SHIPPING_FEE_FEN, description="Integer fen; 0 = 包邮.")
]
# Bounded like a database id: an id past bigint overflowed the lookup into a 500 (the fuzzer).
ImageIds = Annotated[
    list[Annotated[int, Field(ge=1, le=2**63 - 1)]],
    Field(min_length=1, max_length=MAX_IMAGES, description="Upload ids; the first is the cover."),
]


# --- schemas ---------------------------------------------------------------------------------


class CategoryOut(Schema):
    id: int
    name: str
    icon: str
    children: list["CategoryOut"]


CategoryOut.model_rebuild()


class BannerOut(Schema):
    id: int
    title: str
    image_url: str
    target_type: Literal["listing", "category", "url"]
    target: int | str = Field(description="Listing id, category id or URL, per target_type.")


class SellerOut(Schema):
    id: int
    nickname: str
    avatar_url: str


class ListingSummaryOut(Schema):
    id: int
    title: str
    price: int = Field(description="Integer fen.")
    original_price: int | None = Field(description="原价 in fen, shown only.")
    shipping_fee: int = Field(description="Fen the buyer pays on top of the price; 0 = 包邮.")
    city_code: str = Field(description="The seller's city (6-digit division code) or empty.")
    condition: ListingCondition | Literal[""]
    cover_url: str
    status: ListingStatus
    views: int
    favorite_count: int = Field(
        description="How many people want it; in cached pages up to 5 s old (docs/social.md)."
    )
    seller: SellerOut
    created_at: WireDateTime


class FeatureOut(Schema):
    name: str
    value: str


class CategoryRefOut(Schema):
    id: int
    name: str


class ListingDetailOut(ListingSummaryOut):
    description: str
    features: list[FeatureOut]
    images: list[str]
    thumbnails: list[str]
    category: CategoryRefOut
    approved_at: WireDateTime | None
    review_note: str
    updated_at: WireDateTime
    is_favorite: bool = Field(description="Whether the signed-in reader favourited it.")


ListingPage = page_schema(ListingSummaryOut, "ListingPage")


class HomeOut(Schema):
    banners: list[BannerOut]
    categories: list[CategoryOut]
    hot: list[ListingSummaryOut]
    newest: list[ListingSummaryOut]


class UploadOut(Schema):
    id: int
    url: str
    thumbnail_url: str
    width: int
    height: int


class FeatureIn(StrictSchema):
    name: Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=20)]
    value: Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=100)]


Features = Annotated[list[FeatureIn], Field(max_length=MAX_FEATURES)]


class ListingIn(StrictSchema):
    category_id: int
    title: Title
    description: Description
    features: Features = []
    image_ids: ImageIds
    price: PriceFen
    original_price: PriceFen | None = None
    shipping_fee: ShippingFee = 0
    # Defaults to the city of the seller's default address when it has a code (docs/fixes.md).
    city_code: CityCode | None = None
    condition: ListingCondition | None = None


class ListingPatch(StrictSchema):
    category_id: int | None = None
    title: Title | None = None
    description: Description | None = None
    features: Features | None = None
    image_ids: ImageIds | None = None
    price: PriceFen | None = None
    original_price: PriceFen | None = None
    shipping_fee: ShippingFee | None = None
    city_code: CityCode | None = None
    condition: ListingCondition | None = None


class ListingQuery(Schema):
    q: Annotated[str, StringConstraints(strip_whitespace=True, max_length=60)] | None = None
    category: int | None = None
    min_price: Annotated[int, Field(ge=0, le=MAX_PRICE_FEN)] | None = None
    max_price: Annotated[int, Field(ge=0, le=MAX_PRICE_FEN)] | None = None
    # 同城: listings of sellers in this city.
    city: CityCode | None = None
    condition: ListingCondition | None = None
    sort: Literal["newest", "hot", "price_asc", "price_desc"] = "newest"
    limit: Annotated[int, Field(ge=1, le=MAX_LIMIT)] = DEFAULT_LIMIT
    cursor: Annotated[str, StringConstraints(max_length=500)] | None = None


class MyListingsQuery(Schema):
    status: ListingStatus | None = None
    limit: Annotated[int, Field(ge=1, le=MAX_LIMIT)] = DEFAULT_LIMIT
    cursor: Annotated[str, StringConstraints(max_length=500)] | None = None

    @field_validator("status", mode="before")
    @classmethod
    def _blank_is_none(cls, value):
        return value or None


assert set(LISTING_SORTS) == {"newest", "hot", "price_asc", "price_desc"}


# --- helpers ---------------------------------------------------------------------------------


def _viewer_key(request: HttpRequest, viewer: User | None) -> str:
    if viewer is not None:
        return f"u{viewer.pk}"
    return f"ip{client_address(request) or '-'}"


def _listing_fields(payload: ListingIn | ListingPatch) -> dict:
    data = {k: v for k, v in payload.dict(exclude_unset=True).items() if v is not None}
    for name in ("price", "original_price", "shipping_fee"):
        if name in data:
            data[f"{name}_fen"] = data.pop(name)
    if "features" in data:
        data["features"] = [{"name": f["name"], "value": f["value"]} for f in data["features"]]
    return data


# --- endpoints -------------------------------------------------------------------------------


@router.get("/categories", response=list[CategoryOut], auth=None, summary="The category tree")
def categories(request: HttpRequest):
    return category_tree()


@router.get("/banners", response=list[BannerOut], auth=None, summary="Active banners, in order")
def banners(request: HttpRequest):
    return active_banners()


def _rendered(request: HttpRequest, schema: type[Schema] | None, data: dict) -> bytes:
    """The body Ninja would send for `response=schema`. `schema=None`: `data` is already in the
    schema's shape, field order and types (a listing page: the selectors build its summaries
    field by field, `tests/marketplace/test_catalog_pages.py` checks the bytes are the same),
    so the second validation, which cost more than the page's query, is skipped."""
    body = data if schema is None else schema.model_validate(data).model_dump()
    return API_RENDERER.render(request, body, response_status=200)


def _response(content: bytes) -> HttpResponse:
    return HttpResponse(
        content, content_type=f"{API_RENDERER.media_type}; charset={API_RENDERER.charset}"
    )


def _storefront_key(name: str) -> str:
    return f"storefront:{storefront.generation()}:{name}"


def _storefront_response(
    request: HttpRequest, *, name: str, schema: type[Schema] | None, build: Callable[[], dict]
) -> HttpResponse:
    """The rendered response, kept in the storefront cache under the current generation and
    built once at a time (marketplace/storefront.py)."""
    content = storefront.cached(_storefront_key(name), lambda: _rendered(request, schema, build()))
    return _response(content)


@router.get("/home", response=HomeOut, auth=None, summary="Banners, categories, hot and newest")
def home(request: HttpRequest):
    return _storefront_response(request, name="home", schema=HomeOut, build=home_data)


@router.get(
    "/listings",
    response=ListingPage,
    auth=None,
    summary="Search listings on sale (keyword, category incl. children, price range, sort)",
)
def listings(request: HttpRequest, query: Query[ListingQuery]):
    category_ids = None
    if query.category is not None:
        category_ids = category_ids_under(category_id=query.category)
        if category_ids is None:
            raise InvalidInput("No such category.", code="unknown_category")
    if (
        query.min_price is not None
        and query.max_price is not None
        and query.min_price > query.max_price
    ):
        raise InvalidInput("min_price is above max_price.", code="invalid_price_range")

    def build() -> dict:
        return search_listings(
            q=query.q,
            category_ids=category_ids,
            min_price=query.min_price,
            max_price=query.max_price,
            city_code=query.city,
            condition=query.condition,
            sort=query.sort,
            limit=query.limit,
            cursor=query.cursor,
        ).as_dict()

    canonical = json.dumps(query.model_dump(), sort_keys=True, default=str)
    name = "listings:" + hashlib.sha256(canonical.encode()).hexdigest()
    # Documented as ListingPage (`response=`); rendered as built, without validating it again.
    return _storefront_response(request, name=name, schema=None, build=build)


@router.get(
    "/listings/{listing_id}",
    response=ListingDetailOut,
    auth=None,
    summary="A listing; counts one view per viewer per hour",
)
def listing_detail(request: HttpRequest, listing_id: int):
    viewer = optional_viewer(request)
    key = _storefront_key(f"detail:{listing_id}")
    # Only publicly visible listings are cached, and the same for every visitor; the seller
    # (who sees their own listing in every status) always reads the database.
    public = cache.get(key)
    if public is not None and (viewer is None or viewer.pk != public["seller_id"]):
        seller_id, status, content = public["seller_id"], public["status"], public["content"]
    else:
        listing = listing_for_viewer(listing_id=listing_id, viewer=viewer)
        if listing is None:
            raise NotFound("No such listing.", code="listing_not_found")
        seller_id, status = listing.seller_id, listing.status
        content = _rendered(request, ListingDetailOut, listing_detail_data(listing=listing))
        if status in PUBLIC_DETAIL_STATUSES and not listing.seller.is_banned:
            entry = {"seller_id": seller_id, "status": status, "content": content}
            cache.set(key, entry, storefront.STOREFRONT_CACHE_SECONDS)
    if viewer is None or viewer.pk != seller_id:
        catalog_actions.record_view(
            listing_id=listing_id, status=status, viewer_key=_viewer_key(request, viewer)
        )
    if viewer is not None and is_favorite(user=viewer, listing_id=listing_id):
        content = _with_favorite(content)
    return _response(content)


_NOT_FAVORITE = '"is_favorite": false'
_FAVORITE = '"is_favorite": true'


def _with_favorite(content: str | bytes) -> str | bytes:
    """The shared body with this reader's `is_favorite` merged in, without parsing it. The
    field is the detail's last, and the same text inside a string value (a description) has
    its quotes escaped, so the last unescaped occurrence is the field."""
    if isinstance(content, bytes):
        head, found, tail = content.rpartition(_NOT_FAVORITE.encode())
        return head + _FAVORITE.encode() + tail if found else content
    text_head, text_found, text_tail = content.rpartition(_NOT_FAVORITE)
    return text_head + _FAVORITE + text_tail if text_found else content


@router.post("/listings", response={201: ListingDetailOut}, summary="Publish (goes to review)")
def create_listing(request: HttpRequest, payload: ListingIn):
    listing = catalog_actions.create_listing(seller=request.auth, data=_listing_fields(payload))
    return Status(201, listing_detail_data(listing=listing))


@router.patch(
    "/listings/{listing_id}",
    response=ListingDetailOut,
    summary="Edit your listing; content changes send it back to review",
)
def update_listing(request: HttpRequest, listing_id: int, payload: ListingPatch):
    listing = catalog_actions.update_listing(
        seller=request.auth, listing_id=listing_id, data=_listing_fields(payload)
    )
    return listing_detail_data(listing=listing)


@router.post("/listings/{listing_id}/off-shelf", response=ListingDetailOut)
def off_shelf(request: HttpRequest, listing_id: int):
    listing = catalog_actions.take_off_shelf(seller=request.auth, listing_id=listing_id)
    return listing_detail_data(listing=listing)


@router.post(
    "/listings/{listing_id}/relist",
    response=ListingDetailOut,
    summary="Put an off-shelf listing back (through review)",
)
def relist(request: HttpRequest, listing_id: int):
    listing = catalog_actions.relist(seller=request.auth, listing_id=listing_id)
    return listing_detail_data(listing=listing)


@router.get("/me/listings", response=ListingPage, summary="Your listings, every status")
def my_listings(request: HttpRequest, query: Query[MyListingsQuery]):
    return listings_of_seller(
        seller=request.auth, status=query.status, limit=query.limit, cursor=query.cursor
    ).as_dict()


@router.post(
    "/uploads/images",
    response={201: UploadOut},
    throttle=[RateLimit("image_upload")],
    summary="Upload an image (JPEG/PNG/WebP by content, ≤ 10 MB); attach it to one listing",
)
def upload_image(request: HttpRequest, file: File[UploadedFile]):
    if file.size is not None and file.size > upload_actions.MAX_UPLOAD_BYTES:
        raise PayloadTooLarge("Images are limited to 10 MB.")
    data = file.read(upload_actions.MAX_UPLOAD_BYTES + 1)
    upload = upload_actions.upload_image(user=request.auth, data=data)
    return Status(
        201,
        {
            "id": upload.pk,
            "url": storage_url(upload.file),
            "thumbnail_url": storage_url(upload.thumbnail),
            "width": upload.width,
            "height": upload.height,
        },
    )
