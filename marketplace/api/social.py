"""Favourites, follows and the seller page (SPEC §4b, API.md "Accounts" and "Catalog")."""

from typing import Annotated, Literal

from django.http import HttpRequest
from ninja import Query, Router, Schema
from pydantic import Field, StringConstraints

from marketplace.actions import social as social_actions
from marketplace.api.accounts import PublicUserOut
from marketplace.api.catalog import ListingSummaryOut, SellerOut
from marketplace.errors import NotFound
from marketplace.models import ListingStatus, User
from marketplace.pagination import DEFAULT_LIMIT, MAX_LIMIT, PageParams, page_schema
from marketplace.selectors import (
    favorites_of,
    following_of,
    reviews_of_seller,
    seller_listings,
)
from project.wire import WireDateTime

router = Router(tags=["social"])


class FavoriteOut(Schema):
    listing_id: int
    is_favorite: bool
    favorite_count: int


class FavoriteItemOut(ListingSummaryOut):
    is_available: bool = Field(description="On sale now (false once sold or taken down).")
    favorited_at: WireDateTime


FavoritePage = page_schema(FavoriteItemOut, "FavoritePage")




class FollowOut(Schema):
    seller_id: int
    is_following: bool
    follower_count: int


class FollowingItemOut(PublicUserOut):
    followed_at: WireDateTime


FollowingPage = page_schema(FollowingItemOut, "FollowingPage")


class ReviewItemOut(Schema):
    id: int
    rating: int
    comment: str
    buyer: SellerOut
    listing_title: str
    created_at: WireDateTime


ReviewPage = page_schema(ReviewItemOut, "SellerReviewPage")


class SellerListingsQuery(Schema):
    status: Literal["on_sale", "sold"] = "on_sale"
    limit: Annotated[int, Field(ge=1, le=MAX_LIMIT)] = DEFAULT_LIMIT
    cursor: Annotated[str, StringConstraints(max_length=500)] | None = None


def _seller(user_id: int) -> User:
    """Anyone with a mini-program account (a banned seller's page exists, empty of sales);
    staff-only accounts and closed ones are not sellers."""
    seller = User.objects.filter(pk=user_id, openid__isnull=False).first()
    if seller is None:
        raise NotFound("No such user.", code="user_not_found")
    return seller


# --- favourites ------------------------------------------------------------------------------


@router.post(
    "/listings/{listing_id}/favorite",
    response=FavoriteOut,
    summary="Favourite (想要) a listing; idempotent",
)
def favorite(request: HttpRequest, listing_id: int):
    count = social_actions.favorite_listing(user=request.auth, listing_id=listing_id)
    return {"listing_id": listing_id, "is_favorite": True, "favorite_count": count}


@router.delete(
    "/listings/{listing_id}/favorite", response=FavoriteOut, summary="Un-favourite; idempotent"
)
def unfavorite(request: HttpRequest, listing_id: int):
    count = social_actions.unfavorite_listing(user=request.auth, listing_id=listing_id)
    return {"listing_id": listing_id, "is_favorite": False, "favorite_count": count}


@router.get(
    "/me/favorites",
    response=FavoritePage,
    summary="My favourites, newest first, with each listing's current price and status",
)
def my_favorites(request: HttpRequest, page: Query[PageParams]):
    return favorites_of(user=request.auth, limit=page.limit, cursor=page.cursor).as_dict()


# --- follows ---------------------------------------------------------------------------------


@router.post("/users/{user_id}/follow", response=FollowOut, summary="Follow a seller; idempotent")
def follow(request: HttpRequest, user_id: int):
    count = social_actions.follow_seller(user=request.auth, seller_id=user_id)
    return {"seller_id": user_id, "is_following": True, "follower_count": count}


@router.delete("/users/{user_id}/follow", response=FollowOut, summary="Unfollow; idempotent")
def unfollow(request: HttpRequest, user_id: int):
    count = social_actions.unfollow_seller(user=request.auth, seller_id=user_id)
    return {"seller_id": user_id, "is_following": False, "follower_count": count}


@router.get("/me/following", response=FollowingPage, summary="The sellers I follow")
def my_following(request: HttpRequest, page: Query[PageParams]):
    return following_of(user=request.auth, limit=page.limit, cursor=page.cursor).as_dict()


# --- the seller page -------------------------------------------------------------------------


@router.get(
    "/users/{user_id}/listings",
    response=page_schema(ListingSummaryOut, "SellerListingPage"),
    auth=None,
    summary="A seller's listings on sale (default) or sold, newest first",
)
def user_listings(request: HttpRequest, user_id: int, query: Query[SellerListingsQuery]):
    seller = _seller(user_id)
    return seller_listings(
        seller=seller,
        status=ListingStatus(query.status),
        limit=query.limit,
        cursor=query.cursor,
    ).as_dict()


@router.get(
    "/users/{user_id}/reviews",
    response=ReviewPage,
    auth=None,
    summary="Reviews buyers left a seller, newest first",
)
def user_reviews(request: HttpRequest, user_id: int, page: Query[PageParams]):
    seller = _seller(user_id)
    return reviews_of_seller(seller=seller, limit=page.limit, cursor=page.cursor).as_dict()
