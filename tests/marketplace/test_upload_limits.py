"""Uploads cannot amplify memory (issue 20, finding 11): images are judged by their header before
any decoding (pixels and frames), a video body is not read before the order and the seller's
right are checked, and uploads are throttled per user with an atomic counter."""

import io
import struct
import zlib

import pytest
from django.conf import settings
from django.test import Client
from PIL import Image

from marketplace.models import ImageUpload
from marketplace.models.orders import Order
from marketplace.states import OrderStatus
from project.ratelimit import RateLimit
from tests.conftest import assert_error
from tests.marketplace.catalog_factories import image_bytes, post_upload
from tests.marketplace.fulfilment_helpers import paid_order
from tests.races import race

pytestmark = pytest.mark.django_db

MB = 1024 * 1024


def _png_bomb(width: int, height: int) -> bytes:
    """A real, complete RGBA PNG of one colour: a small file that decodes to width*height*4
    bytes. Compressed row by row, so making it costs no more memory than a row."""

    def chunk(kind: bytes, payload: bytes) -> bytes:
        crc = zlib.crc32(kind + payload) & 0xFFFFFFFF
        return struct.pack(">I", len(payload)) + kind + payload + struct.pack(">I", crc)

    compressor = zlib.compressobj(9)
    row = b"\x00" + b"\x00" * (4 * width)
    idat = b"".join(compressor.compress(row) for _ in range(height)) + compressor.flush()
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 6, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", idat) + chunk(b"IEND", b"")


def test_a_small_png_that_decodes_to_forty_megapixels_rgba_is_refused(client_of):
    """The finding: 151 KB that decodes to 39.9 megapixels RGBA (160 MB) was accepted; eight at
    once took a worker from 294 MB to 2.47 GB."""
    bomb = _png_bomb(6320, 6320)
    assert len(bomb) < 400 * 1024
    assert Image.open(io.BytesIO(bomb)).size == (6320, 6320)  # a valid PNG, by its header

    assert_error(post_upload(client_of, bomb, name="bomb.png"), 422, "image_too_large")
    assert ImageUpload.objects.count() == 0


@pytest.mark.parametrize("fmt", ["PNG", "WEBP"])
def test_animated_images_are_refused_before_decoding_their_frames(client_of, fmt):
    frames = [Image.new("RGB", (64, 64), (i * 40, 0, 0)) for i in range(5)]
    out = io.BytesIO()
    frames[0].save(out, fmt, save_all=True, append_images=frames[1:])
    assert getattr(Image.open(io.BytesIO(out.getvalue())), "n_frames", 1) == 5

    assert_error(post_upload(client_of, out.getvalue(), name="anim.bin"), 422, "image_animated")
    assert ImageUpload.objects.count() == 0


def test_a_large_camera_jpeg_is_still_accepted(client_of):
    """JPEGs are decoded at a reduced scale (Pillow's draft mode), so a phone photo larger than
    the cap on fully decoded images is still taken."""
    from marketplace.actions.uploads import MAX_DECODED_PIXELS, MAX_SIDE

    width, height = 4800, 4000
    assert width * height > MAX_DECODED_PIXELS
    response = post_upload(client_of, image_bytes("JPEG", size=(width, height)))
    assert response.status_code == 201, response.content
    stored = response.json()
    # Decoded at half scale (2400x2000): still a full-screen photo, in the same proportions.
    assert MAX_SIDE // 2 <= stored["width"] <= MAX_SIDE
    assert stored["width"] * height == stored["height"] * width


# --- videos ------------------------------------------------------------------------------------


class TrippingBody(io.RawIOBase):
    """A request body that counts what is read from it: the view must refuse first."""

    def __init__(self, size: int) -> None:
        self.size = size
        self.consumed = 0

    def readable(self) -> bool:
        return True

    def read(self, size: int = -1) -> bytes:
        size = self.size - self.consumed if size is None or size < 0 else size
        size = max(0, min(size, self.size - self.consumed))
        self.consumed += size
        return b"\x00" * size

    def readline(self, size: int = -1) -> bytes:
        return self.read(size if size and size > 0 else 1024)


def _stream_video(token: str, order_no: str, size: int = 50 * MB):
    body = TrippingBody(size)
    response = Client().generic(
        "POST",
        f"/api/orders/{order_no}/video",
        b"",
        **{
            "wsgi.input": body,
            "CONTENT_LENGTH": str(size),
            "CONTENT_TYPE": "multipart/form-data; boundary=xyz",
            "HTTP_AUTHORIZATION": f"Bearer {token}",
        },
    )
    return response, body.consumed


@pytest.mark.django_db(transaction=True)
def test_a_video_for_an_order_that_is_not_yours_is_refused_without_reading_the_body(make_client):
    buyer, seller, order_no = paid_order(make_client)
    stranger = make_client()

    for client, target in [
        (stranger, "M" + "0" * 20),  # nonexistent
        (stranger, order_no),  # someone else's
        (buyer, order_no),  # the buyer's, but only the seller films the item
    ]:
        response, consumed = _stream_video(client.token, target)
        assert_error(response, 404, "order_not_found")
        assert consumed == 0, consumed

    Order.objects.filter(order_no=order_no).update(status=OrderStatus.AWAITING_SHIPMENT)
    response, consumed = _stream_video(seller.token, order_no)
    assert_error(response, 409, "invalid_order_status")
    assert consumed == 0, consumed


def test_video_uploads_are_throttled_per_user_before_the_body_is_read(make_client, settings):
    settings.RATE_LIMITS = {**settings.RATE_LIMITS, "video_upload": "3/h"}
    me, other = make_client(), make_client()

    statuses = [_stream_video(me.token, "NOPE")[0].status_code for _ in range(3)]
    throttled, consumed = _stream_video(me.token, "NOPE")

    assert statuses == [404] * 3
    assert_error(throttled, 429, "rate_limited")
    assert int(throttled["Retry-After"]) >= 1
    assert consumed == 0
    assert _stream_video(other.token, "NOPE")[0].status_code == 404  # per user


@pytest.mark.redis
@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_the_upload_counter_is_atomic_under_concurrency(user):
    """Read-then-write counting (ninja's own throttles) lets a burst through; add + incr in
    Redis does not."""
    throttle = RateLimit("race_test", "5/h")

    class Request:
        auth = user

    results = race(*[lambda: throttle.allow_request(Request())] * 20)

    assert sorted(results) == [False] * 15 + [True] * 5


def test_uploads_stream_to_temporary_files():
    from django.core.files.uploadhandler import TemporaryFileUploadHandler, load_handler

    handlers = [load_handler(path) for path in settings.FILE_UPLOAD_HANDLERS]
    assert handlers and all(isinstance(h, TemporaryFileUploadHandler) for h in handlers)


@pytest.mark.django_db(transaction=True)
def test_a_malformed_upload_body_is_a_client_error(make_client):
    """Found while writing the above: a multipart body too big for the form middleware to check
    (over 256 KiB) and malformed (endless part headers) was a 500 when the view parsed it."""
    buyer, seller, order_no = paid_order(make_client)
    for path in ["/api/uploads/images", f"/api/orders/{order_no}/video"]:
        body = b"--xyz\r\n" + b"x" * (300 * 1024)
        response = Client().generic(
            "POST",
            path,
            body,
            content_type="multipart/form-data; boundary=xyz",
            headers={"Authorization": f"Bearer {seller.token}"},
        )
        assert_error(response, 400, "bad_request")
