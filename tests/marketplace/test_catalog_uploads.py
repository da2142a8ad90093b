"""Image uploads: judged by content, size and pixel limits, EXIF stripped, thumbnails stored."""

import io
import struct
import zlib

import pytest
from django.conf import settings
from django.core.files.storage import default_storage
from PIL import Image

from marketplace.actions.uploads import MAX_UPLOAD_BYTES
from marketplace.models import ImageUpload
from tests.conftest import assert_error
from tests.marketplace.catalog_factories import image_bytes, post_upload

pytestmark = pytest.mark.django_db


@pytest.mark.parametrize("fmt", ["JPEG", "PNG", "WEBP"])
def test_accepted_formats_are_stored_with_a_thumbnail(client_of, fmt):
    response = post_upload(client_of, image_bytes(fmt, size=(1200, 900)), name="x.bin")
    assert response.status_code == 201, response.content
    body = response.json()
    upload = ImageUpload.objects.get(pk=body["id"], owner=client_of.user)
    assert upload.format == fmt.lower() and body["url"].startswith(settings.MEDIA_BASE_URL + "/media/listings/")
    with default_storage.open(upload.thumbnail) as thumb:
        assert max(Image.open(thumb).size) == 480
    with default_storage.open(upload.file) as main:
        assert Image.open(main).format == fmt


def test_exif_is_stripped_after_applying_the_orientation(client_of):
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90° when shown
    exif[0x010F] = "PhoneMaker"
    exif[0x8825] = {1: "N", 2: (22.0, 32.0, 0.0)}  # GPS position
    response = post_upload(client_of, image_bytes("JPEG", size=(80, 40), exif=exif))
    assert response.status_code == 201, response.content
    upload = ImageUpload.objects.get(pk=response.json()["id"])
    with default_storage.open(upload.file) as stored:
        image = Image.open(stored)
        assert image.size == (40, 80)  # orientation applied to the pixels
        assert dict(image.getexif()) == {}
        assert "exif" not in image.info


@pytest.mark.parametrize(
    ("data", "name", "code"),
    [
        (b"just some text, not an image", "evil.jpg", "invalid_image"),
        (b"", "empty.jpg", "invalid_image"),
        (image_bytes("JPEG")[:200], "truncated.jpg", "invalid_image"),
        (image_bytes("GIF"), "anim.gif", "invalid_image"),
        (image_bytes("BMP"), "old.bmp", "invalid_image"),
    ],
)
def test_files_that_are_not_accepted_images_are_refused(client_of, data, name, code):
    assert_error(post_upload(client_of, data, name=name), 422, code)
    assert ImageUpload.objects.count() == 0


def _png_header_only(width: int, height: int) -> bytes:
    """A tiny PNG that claims a huge canvas: the classic decompression bomb."""

    def chunk(kind: bytes, payload: bytes) -> bytes:
        return (
            struct.pack(">I", len(payload))
            + kind
            + payload
            + struct.pack(">I", zlib.crc32(kind + payload) & 0xFFFFFFFF)
        )

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    idat = zlib.compress(b"\x00" * 1024)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", idat) + chunk(b"IEND", b"")


def test_a_decompression_bomb_is_refused_before_decoding(client_of):
    bomb = _png_header_only(50_000, 50_000)
    assert len(bomb) < 10_000
    assert_error(post_upload(client_of, bomb, name="bomb.png"), 422, "image_too_large")
    assert ImageUpload.objects.count() == 0


def test_an_oversized_file_is_refused(client_of):
    big = io.BytesIO()
    big.write(image_bytes("PNG"))
    big.write(b"\0" * (MAX_UPLOAD_BYTES + 1 - big.tell()))
    assert_error(post_upload(client_of, big.getvalue(), name="big.png"), 413, "payload_too_large")
    assert ImageUpload.objects.count() == 0


def test_upload_needs_a_file_and_a_token(client_of, anon):
    response = client_of.client.post(
        "/api/uploads/images", {}, headers={"Authorization": f"Bearer {client_of.token}"}
    )
    assert_error(response, 422, "validation_error")
    assert_error(anon.client.post("/api/uploads/images", {}), 401, "unauthorized")
