"""Accounts: WeChat sign-in, phone binding, profile, public profiles and the address book."""

from typing import Annotated

from django.conf import settings
from django.http import HttpRequest
from ninja import File, Router, Schema, Status
from ninja.files import UploadedFile
from pydantic import ConfigDict, Field, StringConstraints

from marketplace.actions import accounts as account_actions
from marketplace.actions import uploads as upload_actions
from marketplace.errors import NotFound, PayloadTooLarge, RateLimited, Unauthenticated
from marketplace.models import User
from marketplace.models.catalog import CITY_CODE_PATTERN
from marketplace.selectors import addresses_of, public_profile_data, public_user
from project.client_address import client_address
from project.ratelimit import RateLimit, count_scope, peek_scope
from project.wire import WireDateTime

router = Router(tags=["accounts"])

Nickname = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=64)]
AvatarUrl = Annotated[str, StringConstraints(max_length=500, pattern=r"^https?://\S+$")]
CityCode = Annotated[str, StringConstraints(pattern=CITY_CODE_PATTERN)]
Phone = Annotated[str, StringConstraints(strip_whitespace=True, pattern=r"^\+?[0-9][0-9-]{5,19}$")]


def _short(max_length: int) -> type[str]:
    return Annotated[
        str, StringConstraints(strip_whitespace=True, min_length=1, max_length=max_length)
    ]


def optional_viewer(request: HttpRequest) -> User | None:
    """Public endpoints still recognise a signed-in reader (a seller sees their own listing, a
    buyer their favourites and follows)."""
    scheme, _, raw = request.headers.get("Authorization", "").partition(" ")
    if scheme.lower() != "bearer":
        return None
    user = account_actions.user_for_token(raw.strip())
    return user if user is not None and not user.is_banned else None


class StrictSchema(Schema):
    """Request bodies refuse unknown fields, so a typo or a smuggled field is an error, not ignored."""

    model_config = ConfigDict(extra="forbid")


class LoginIn(StrictSchema):
    code: Annotated[str, StringConstraints(min_length=1, max_length=128)]
    nickname: Nickname | None = None
    avatar_url: AvatarUrl | None = None
    # Reopen this WeChat account's closed account (注销 within its cooling-off period).
    restore_account: bool = False


class UserOut(Schema):
    id: int
    nickname: str
    avatar_url: str
    phone: str
    rating_avg: float | None
    rating_count: int


class PublicUserOut(Schema):
    """The seller page's header (SPEC §4b): every count is a counter column."""

    id: int
    nickname: str
    avatar_url: str
    rating_avg: float | None
    rating_count: int
    on_sale_count: int
    sold_count: int
    follower_count: int
    is_following: bool = Field(description="Whether the signed-in reader follows them.")
    joined_at: WireDateTime


class LoginOut(Schema):
    token: str
    user: UserOut
    # Set when this WeChat account has a closed account that signing in with
    # `restore_account: true` can still reopen: when it will be erased.
    restorable_until: WireDateTime | None = None


class PhoneIn(StrictSchema):
    code: Annotated[str, StringConstraints(min_length=1, max_length=128)]


class PhoneOut(Schema):
    phone: str


class ProfileIn(StrictSchema):
    nickname: Nickname | None = None
    avatar_url: AvatarUrl | None = None


class AddressIn(StrictSchema):
    name: _short(40)
    phone: Phone
    province: _short(40)
    city: _short(40)
    district: _short(40)
    detail: _short(200)
    city_code: CityCode | None = None
    is_default: bool = False


class AddressPatch(StrictSchema):
    name: _short(40) | None = None
    phone: Phone | None = None
    province: _short(40) | None = None
    city: _short(40) | None = None
    district: _short(40) | None = None
    detail: _short(200) | None = None
    city_code: CityCode | None = None
    is_default: bool | None = None


class AddressOut(Schema):
    id: int
    name: str
    phone: str
    province: str
    city: str
    district: str
    detail: str
    city_code: str
    is_default: bool


@router.post(
    "/auth/wechat-login",
    auth=None,
    response=LoginOut,
    # A per-address ceiling only (300/min): carrier-grade NAT puts many people behind one
    # address. The real limit is per openid, known once the code is exchanged (below).
    throttle=[RateLimit("sign_in_address", per="address")],
    summary="Sign in with a wx.login code",
)
def wechat_login(request: HttpRequest, payload: LoginIn):
    address = client_address(request) or "-"
    if not peek_scope("sign_in_failures", address).allowed:
        # Made-up or replayed codes from this address: refused before asking WeChat again.
        raise RateLimited(
            "Too many failed sign-ins from this network; wait a minute.",
            code="sign_in_failures",
        )

    def admit(openid: str) -> None:
        if not count_scope("sign_in", f"openid:{openid}").allowed:
            raise RateLimited("Too many sign-ins; wait a minute.", code="rate_limited")

    try:
        signed_in = account_actions.sign_in_with_wechat(
            code=payload.code,
            nickname=payload.nickname,
            avatar_url=payload.avatar_url,
            restore_account=payload.restore_account,
            admit=admit,
        )
    except Unauthenticated:
        count_scope("sign_in_failures", address)
        raise
    return {
        "token": signed_in.token,
        "user": signed_in.user,
        "restorable_until": signed_in.restorable_until,
    }


@router.post("/auth/logout", response={204: None}, summary="Revoke the token of this request")
def logout(request: HttpRequest):
    raw = request.headers.get("Authorization", "").partition(" ")[2]
    account_actions.revoke_token(raw=raw)
    return Status(204, None)


@router.post(
    "/auth/phone",
    response=PhoneOut,
    throttle=[RateLimit("phone", settings.RATE_LIMITS["phone"])],
    summary="Bind the phone number",
)
def bind_phone(request: HttpRequest, payload: PhoneIn):
    return {"phone": account_actions.bind_phone(user=request.auth, code=payload.code)}


@router.get("/me", response=UserOut)
def me(request: HttpRequest):
    return request.auth


@router.patch("/me", response=UserOut)
def update_me(request: HttpRequest, payload: ProfileIn):
    return account_actions.update_profile(
        user=request.auth, nickname=payload.nickname, avatar_url=payload.avatar_url
    )


@router.post(
    "/me/avatar",
    response=UserOut,
    throttle=[RateLimit("image_upload")],
    summary="Upload my avatar (the chooseAvatar file; JPEG/PNG/WebP ≤ 10 MB, stored square)",
)
def upload_avatar(request: HttpRequest, file: File[UploadedFile]):
    if file.size is not None and file.size > upload_actions.MAX_UPLOAD_BYTES:
        raise PayloadTooLarge("Images are limited to 10 MB.")
    name = upload_actions.store_avatar(
        user=request.auth, data=file.read(upload_actions.MAX_UPLOAD_BYTES + 1)
    )
    return account_actions.set_uploaded_avatar(user=request.auth, name=name)


@router.get("/users/{user_id}", response=PublicUserOut, auth=None)
def user_profile(request: HttpRequest, user_id: int):
    user = public_user(user_id=user_id)
    if user is None:
        raise NotFound("No such user.", code="user_not_found")
    return public_profile_data(seller=user, viewer=optional_viewer(request))


@router.get("/addresses", response=list[AddressOut], summary="The address book (at most 20)")
def list_addresses(request: HttpRequest):
    return addresses_of(user=request.auth)


@router.post("/addresses", response={201: AddressOut})
def create_address(request: HttpRequest, payload: AddressIn):
    return Status(201, account_actions.create_address(user=request.auth, data=payload.dict()))


@router.patch("/addresses/{address_id}", response=AddressOut)
def update_address(request: HttpRequest, address_id: int, payload: AddressPatch):
    return account_actions.update_address(
        user=request.auth, address_id=address_id, data=payload.dict(exclude_unset=True)
    )


@router.delete("/addresses/{address_id}", response={204: None})
def delete_address(request: HttpRequest, address_id: int):
    account_actions.delete_address(user=request.auth, address_id=address_id)
    return Status(204, None)
