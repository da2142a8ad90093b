"""Orders: create, pay, list, detail, cancel; WeChat Pay's notifications."""

from typing import Annotated, Literal

from django.core.exceptions import RequestDataTooBig
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.http.request import RawPostDataException
from ninja import Query, Router, Schema, Status
from pydantic import Field, StringConstraints

from marketplace import selectors
from marketplace.actions import fulfilment, lifecycle
from marketplace.actions import payments as payment_actions
from marketplace.actions import payouts as payout_actions
from marketplace.actions import refunds as refund_actions
from marketplace.api.accounts import StrictSchema
from marketplace.api.idempotency import idempotent
from marketplace.errors import (
    InvalidInput,
    PayloadTooLarge,
    Unprocessable,
    UnsupportedMediaType,
)
from marketplace.gateways.wechatpay import NotificationRejected
from marketplace.models.orders import Order
from marketplace.pagination import PageParams, page_schema, paginate
from marketplace.representations import order_data
from marketplace.states import OrderStatus
from project.ratelimit import RateLimit
from project.wire import WireDateTime

router = Router(tags=["orders"])
notify_router = Router(tags=["payments"])

Reason = Annotated[str, StringConstraints(strip_whitespace=True, max_length=200)]


class OrderIn(StrictSchema):
    listing_id: int = Field(gt=0)
    address_id: int = Field(gt=0)


class CancelIn(StrictSchema):
    reason: Reason = ""


class AddressSnapshot(Schema):
    name: str
    phone: str
    province: str
    city: str
    district: str
    detail: str


class HistoryOut(Schema):
    from_: str | None = Field(None, alias="from")
    to: str
    actor: str
    reason: str
    at: WireDateTime

    model_config = {"populate_by_name": True}


class OrderSellerOut(Schema):
    id: int
    nickname: str
    avatar_url: str


class OrderSummaryOut(Schema):
    order_no: str
    listing_id: int
    # The item as it was bought: a snapshot taken with the order, whatever the listing is now.
    title: str
    cover_url: str
    seller: OrderSellerOut
    buyer_id: int
    seller_id: int
    status: OrderStatus
    price: int = Field(description="The item's price in fen; commission is on this alone.")
    shipping_fee: int = Field(description="Shipping in fen, paid on top (0 = 包邮).")
    total: int = Field(description="What the buyer pays: price + shipping_fee.")
    commission: int | None
    deadline_at: WireDateTime | None
    refund_status: str
    created_at: WireDateTime


class OrderOut(OrderSummaryOut):
    address: AddressSnapshot
    paid_at: WireDateTime | None
    has_video: bool
    # A fresh private URL for the reader, valid PRIVATE_MEDIA_TTL_SECONDS; ask the order again
    # for a new one (events carry has_video only).
    video_url: str | None
    carrier: str | None
    tracking_no: str | None
    shipped_at: WireDateTime | None
    completed_at: WireDateTime | None
    history: list[HistoryOut]


class PayParams(Schema):
    appId: str  # noqa: N815 - wx.requestPayment's own names
    timeStamp: str  # noqa: N815
    nonceStr: str  # noqa: N815
    package: str
    signType: Literal["RSA"]  # noqa: N815
    paySign: str  # noqa: N815


class PayOut(Schema):
    order_no: str
    pay_params: PayParams


class OrderFilters(PageParams):
    role: Literal["buyer", "seller"] = "buyer"
    status: OrderStatus | None = None


OrderPage = page_schema(OrderSummaryOut, "OrderPage")


def _detail(order: Order, reader) -> dict:
    return order_data(selectors.order_for_display(order_id=order.pk), reader=reader)


@router.post(
    "/orders", response={201: OrderOut}, by_alias=True, summary="Order a listing at its price"
)
@idempotent("orders.create", response=OrderOut, by_alias=True)
def create_order(request: HttpRequest, payload: OrderIn):
    order = lifecycle.create_order(
        buyer=request.auth, listing_id=payload.listing_id, address_id=payload.address_id
    )
    return Status(201, _detail(order, request.auth))


@router.get("/orders", response=OrderPage, summary="My orders as buyer or seller")
def list_orders(request: HttpRequest, filters: Query[OrderFilters]):
    page = paginate(
        selectors.orders_of(user=request.auth, role=filters.role, status=filters.status),
        ordering=("-id",),
        limit=filters.limit,
        cursor=filters.cursor,
        transform=lambda rows: [order_data(row, with_history=False) for row in rows],
    )
    return page.as_dict()


@router.get("/orders/{order_no}", response=OrderOut, by_alias=True)
def get_order(request: HttpRequest, order_no: str):
    return order_data(selectors.order_of(user=request.auth, order_no=order_no), reader=request.auth)


@router.post("/orders/{order_no}/pay", response=PayOut, summary="WeChat Pay parameters")
@idempotent("orders.pay", response=PayOut)
def pay_order(request: HttpRequest, order_no: str):
    return Status(200, payment_actions.start_payment(buyer=request.auth, order_no=order_no))


@router.post("/orders/{order_no}/cancel", response=OrderOut, by_alias=True)
def cancel_order(request: HttpRequest, order_no: str, payload: CancelIn | None = None):
    reason = payload.reason if payload else ""
    order = lifecycle.cancel_order(user=request.auth, order_no=order_no, reason=reason)
    return _detail(order, request.auth)


def _raw_body(request: HttpRequest) -> bytes:
    """The exact bytes WeChat signed. Read here, not by a parser, so the signature is checked
    over them; the declared-length check (BodySizeLimitMiddleware) cannot see a chunked body."""
    try:
        return request.body
    except RequestDataTooBig as exc:
        raise PayloadTooLarge() from exc
    except RawPostDataException as exc:  # a multipart stream already parsed as a form
        raise UnsupportedMediaType() from exc


def _wechat_reply(request: HttpRequest, handler) -> HttpResponse:
    """WeChat Pay wants 200/204 to stop retrying; anything else means 'send it again'."""
    body = _raw_body(request)
    try:
        handler(headers=request.META, body=body)
    except NotificationRejected as exc:
        return JsonResponse({"code": "FAIL", "message": f"rejected: {exc}"}, status=401)
    return HttpResponse(status=204)


@notify_router.post(
    "/payments/wechat/notify",
    auth=None,
    response={204: None, 401: dict},
    summary="WeChat Pay v3 payment notification (signed, encrypted)",
)
def wechat_pay_notify(request: HttpRequest):
    return _wechat_reply(request, payment_actions.handle_payment_notification)


@notify_router.post(
    "/payments/wechat/refund-notify",
    auth=None,
    response={204: None, 401: dict},
    summary="WeChat Pay v3 refund notification (signed, encrypted)",
)
def wechat_refund_notify(request: HttpRequest):
    return _wechat_reply(request, refund_actions.handle_refund_notification)


@notify_router.post(
    "/payments/wechat/transfer-notify",
    auth=None,
    response={204: None, 401: dict},
    summary="WeChat Pay v3 merchant transfer notification (signed, encrypted)",
)
def wechat_transfer_notify(request: HttpRequest):
    return _wechat_reply(request, payout_actions.handle_transfer_notification)


# --- fulfilment --------------------------------------------------------------------------------

MAX_VIDEO_BYTES = 100 * 1024 * 1024
# ISO base media "ftyp" brands: QuickTime is MOV, the rest are MP4 flavours phones write.
MOV_BRANDS = {b"qt  "}
MP4_BRANDS = {
    b"isom",
    b"iso2",
    b"iso4",
    b"iso5",
    b"iso6",
    b"mp41",
    b"mp42",
    b"avc1",
    b"M4V ",
    b"3gp4",
    b"3gp5",
    b"3gp6",
    b"dash",
    b"MSNV",
}


def video_extension(upload) -> str:
    """Judged by content (the `ftyp` box), never by name or declared type."""
    if upload.size > MAX_VIDEO_BYTES:
        raise PayloadTooLarge("The video must be at most 100 MB.", code="video_too_large")
    upload.seek(0)
    head = upload.read(12)
    upload.seek(0)
    if len(head) < 12 or head[4:8] != b"ftyp":
        raise InvalidInput("Send an MP4 or MOV video.", code="invalid_video")
    brand = head[8:12]
    if brand in MOV_BRANDS:
        return "mov"
    if brand in MP4_BRANDS:
        return "mp4"
    raise InvalidInput("Send an MP4 or MOV video.", code="invalid_video")


class RejectIn(StrictSchema):
    reason: Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=200)]


class ShipIn(StrictSchema):
    tracking_no: Annotated[
        str, StringConstraints(strip_whitespace=True, min_length=1, max_length=40)
    ]
    carrier_code: Annotated[str, StringConstraints(strip_whitespace=True, max_length=30)] | None = (
        None
    )


class DisputeIn(RejectIn):
    reason: Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=500)]


class ReviewIn(StrictSchema):
    rating: int = Field(ge=1, le=5)
    comment: Annotated[str, StringConstraints(strip_whitespace=True, max_length=500)] = ""


class ReviewOut(Schema):
    order_no: str
    rating: int
    comment: str
    created_at: WireDateTime


class TrackingEventOut(Schema):
    time: WireDateTime
    text: str


class TrackingOut(Schema):
    carrier: str
    tracking_no: str
    state: int | None
    events: list[TrackingEventOut]


# The body the operation takes, declared by hand: the view reads request.FILES itself, after
# checking the order (a `File` parameter would make ninja parse the body before the view runs).
VIDEO_REQUEST_BODY = {
    "requestBody": {
        "required": True,
        "content": {
            "multipart/form-data": {
                "schema": {
                    "title": "VideoUpload",
                    "type": "object",
                    "properties": {"file": {"title": "File", "type": "string", "format": "binary"}},
                    "required": ["file"],
                }
            }
        },
    }
}


def _uploaded_file(request: HttpRequest, name: str = "file"):
    upload = request.FILES.get(name)
    if upload is None:
        raise Unprocessable(
            "%(name)s: Field required",
            params={"name": name},
            errors=[{"loc": ["file", name], "msg": "Field required", "type": "missing"}],
        )
    return upload


@router.post(
    "/orders/{order_no}/video",
    response=OrderOut,
    by_alias=True,
    throttle=[RateLimit("video_upload")],
    openapi_extra=VIDEO_REQUEST_BODY,
    summary="Seller's video (MP4/MOV, ≤ 100 MB)",
)
def upload_video(request: HttpRequest, order_no: str):
    # Read-only and before the body: Django parses request.FILES lazily, on first access, so a
    # video for an order that does not exist, is someone else's or is not awaiting one is
    # refused without reading (or spooling to disk) up to 100 MB.
    fulfilment.check_video_upload(seller=request.auth, order_no=order_no)
    file = _uploaded_file(request)
    extension = video_extension(file)
    order = fulfilment.upload_video(
        seller=request.auth, order_no=order_no, file=file, extension=extension
    )
    return _detail(order, request.auth)


@router.post("/orders/{order_no}/confirm-video", response=OrderOut, by_alias=True)
def confirm_video(request: HttpRequest, order_no: str):
    return _detail(fulfilment.confirm_video(buyer=request.auth, order_no=order_no), request.auth)


@router.post("/orders/{order_no}/reject-video", response=OrderOut, by_alias=True)
def reject_video(request: HttpRequest, order_no: str, payload: RejectIn):
    return _detail(
        fulfilment.reject_video(buyer=request.auth, order_no=order_no, reason=payload.reason),
        request.auth,
    )


@router.post(
    "/orders/{order_no}/ship",
    response=OrderOut,
    by_alias=True,
    summary="Ship (carrier detected when omitted)",
)
def ship(request: HttpRequest, order_no: str, payload: ShipIn):
    order = fulfilment.ship_order(
        seller=request.auth,
        order_no=order_no,
        tracking_no=payload.tracking_no,
        carrier_code=payload.carrier_code,
    )
    return _detail(order, request.auth)


@router.get("/orders/{order_no}/tracking", response=TrackingOut)
def tracking(request: HttpRequest, order_no: str):
    return fulfilment.tracking_data(
        selectors.order_of(user=request.auth, order_no=order_no)
    )


@router.post("/orders/{order_no}/mark-delivered", response=OrderOut, by_alias=True)
def mark_delivered(request: HttpRequest, order_no: str):
    return _detail(fulfilment.mark_delivered(seller=request.auth, order_no=order_no), request.auth)


@router.post("/orders/{order_no}/confirm-receipt", response=OrderOut, by_alias=True)
def confirm_receipt(request: HttpRequest, order_no: str):
    return _detail(fulfilment.confirm_receipt(buyer=request.auth, order_no=order_no), request.auth)


@router.post("/orders/{order_no}/dispute", response=OrderOut, by_alias=True)
def dispute(request: HttpRequest, order_no: str, payload: DisputeIn):
    return _detail(
        fulfilment.open_dispute(buyer=request.auth, order_no=order_no, reason=payload.reason),
        request.auth,
    )


@router.post("/orders/{order_no}/review", response={201: ReviewOut})
def review(request: HttpRequest, order_no: str, payload: ReviewIn):
    created = fulfilment.review_order(
        buyer=request.auth, order_no=order_no, rating=payload.rating, comment=payload.comment
    )
    return Status(
        201,
        {
            "order_no": order_no,
            "rating": created.rating,
            "comment": created.comment,
            "created_at": created.created_at,
        },
    )


@notify_router.post(
    "/logistics/kuaidi100/notify",
    auth=None,
    response={200: dict, 400: dict, 404: dict},
    summary="Kuaidi100 subscription push (form fields param + sign, per-order salt)",
)
def kuaidi100_notify(request: HttpRequest, order: str):
    reply = fulfilment.handle_tracking_push(order_no=order[:32], form=request.POST.dict())
    return JsonResponse(reply)
