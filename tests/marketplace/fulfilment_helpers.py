"""Walk an order to a given point of its life through the API and the sandboxes."""

from django.core.files.uploadedfile import SimpleUploadedFile

from tests.conftest import ApiClient
from tests.marketplace.order_helpers import (
    buyer_with_address,
    listing_on_sale,
    pay_in_wechat,
    place_order,
)

# The smallest thing that is an MP4 by content: an ISO media `ftyp` box, brand mp42.
MP4_BYTES = b"\x00\x00\x00\x18ftypmp42\x00\x00\x00\x00mp42isom" + b"\x00" * 64
MOV_BYTES = b"\x00\x00\x00\x14ftypqt  \x00\x00\x00\x00qt  " + b"\x00" * 64
TRACKING_NO = "YT7712345678901"


def post_video(seller: ApiClient, order_no: str, data: bytes = MP4_BYTES, name: str = "item.mp4"):
    return seller.client.post(
        f"/api/orders/{order_no}/video",
        {"file": SimpleUploadedFile(name, data, content_type="video/mp4")},
        headers={"Authorization": f"Bearer {seller.token}"},
    )


def paid_order(make_client, price_fen: int = 10_000) -> tuple[ApiClient, ApiClient, str]:
    buyer, address_id = buyer_with_address(make_client)
    seller = make_client()
    listing = listing_on_sale(seller=seller.user, price_fen=price_fen)
    order_no = place_order(buyer, listing, address_id).json()["order_no"]
    pay_in_wechat(buyer, order_no)
    return buyer, seller, order_no


def video_uploaded(make_client, **kw):
    buyer, seller, order_no = paid_order(make_client, **kw)
    assert post_video(seller, order_no).status_code == 200
    return buyer, seller, order_no


def awaiting_shipment(make_client, **kw):
    buyer, seller, order_no = video_uploaded(make_client, **kw)
    assert buyer.post(f"/api/orders/{order_no}/confirm-video").status_code == 200
    return buyer, seller, order_no


def shipped(make_client, **kw):
    buyer, seller, order_no = awaiting_shipment(make_client, **kw)
    response = seller.post(
        f"/api/orders/{order_no}/ship", {"tracking_no": TRACKING_NO, "carrier_code": "yuantong"}
    )
    assert response.status_code == 200, response.content
    return buyer, seller, order_no


def advance_parcel(client: ApiClient, tracking_no: str = TRACKING_NO, status: str = "polling"):
    return client.client.post(
        "/sandbox/kuaidi100/advance",
        {"tracking_no": tracking_no, "status": status},
        content_type="application/json",
    )
