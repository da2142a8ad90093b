"""Image uploads: judged by content, re-encoded (no EXIF), thumbnailed, stored via Django storage.

Limits (docs/catalog.md "Uploads"): JPEG/PNG/WebP by content whatever the name says,
≤ MAX_UPLOAD_BYTES, ≤ MAX_PIXELS (a small file can decode to gigabytes: a "decompression bomb").
"""

import io
import logging
import uuid
import warnings

from django.core.files.base import ContentFile
from django.core.files.storage import default_storage
from django.db import transaction
from django.utils import timezone
from PIL import Image, ImageOps, UnidentifiedImageError

from marketplace.errors import DomainError, PayloadTooLarge
from marketplace.models import ImageUpload, User

logger = logging.getLogger("marketplace.uploads")

MAX_UPLOAD_BYTES = 10 * 1024 * 1024
MAX_PIXELS = 40_000_000  # a 48 MP phone photo is 8000x6000; beyond that we refuse
MAX_SIDE = 2560  # stored images are downscaled to this; nobody needs more on a phone
THUMB_SIDE = 480  # list-size thumbnail (cover in the two-column feed)
ALLOWED_FORMATS = {"JPEG": "jpg", "PNG": "png", "WEBP": "webp"}

# Pillow's own bomb guard (warning above, error above twice this); we check before decoding
# too, but this keeps any other Image.open in the process safe.
Image.MAX_IMAGE_PIXELS = MAX_PIXELS


class InvalidImage(DomainError):
    status = 422
    code = "invalid_image"
    message = "Send a JPEG, PNG or WebP image."


def _open_checked(data: bytes) -> Image.Image:
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            probe = Image.open(io.BytesIO(data))
            if probe.format not in ALLOWED_FORMATS:
                raise InvalidImage(
                    f"{probe.format or 'This'} images are not accepted; send JPEG, PNG or WebP."
                )
            width, height = probe.size
            if width < 1 or height < 1 or width * height > MAX_PIXELS:
                raise InvalidImage(
                    f"The image is too large ({width}x{height}); at most {MAX_PIXELS} pixels.",
                    code="image_too_large",
                )
            probe.verify()  # structure and checksums, without decoding pixels
            image = Image.open(io.BytesIO(data))  # verify() leaves the image unusable
            image.load()
    except InvalidImage:
        raise
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        raise InvalidImage("The image decodes to too many pixels.", code="image_too_large") from exc
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError, EOFError) as exc:
        raise InvalidImage("The file is not a readable JPEG, PNG or WebP image.") from exc
    return image


def _encode(image: Image.Image, fmt: str) -> bytes:
    out = io.BytesIO()
    if fmt == "JPEG":
        if image.mode not in ("RGB", "L"):
            image = image.convert("RGB")
        image.save(out, "JPEG", quality=85, optimize=True, progressive=True)
    elif fmt == "PNG":
        if image.mode not in ("RGB", "RGBA", "L", "LA", "P"):
            image = image.convert("RGBA")
        image.save(out, "PNG", optimize=True)
    else:
        if image.mode not in ("RGB", "RGBA"):
            image = image.convert("RGBA" if "A" in image.mode else "RGB")
        image.save(out, "WEBP", quality=85)
    # Saving without exif=... writes no EXIF block: phones put GPS positions there.
    return out.getvalue()


def process_image(data: bytes) -> tuple[bytes, bytes, str, int, int]:
    """(main bytes, thumbnail bytes, format, width, height) of an upload, or InvalidImage."""
    if len(data) > MAX_UPLOAD_BYTES:
        raise PayloadTooLarge(f"Images are limited to {MAX_UPLOAD_BYTES // (1024 * 1024)} MB.")
    if not data:
        raise InvalidImage("The file is empty.")
    image = _open_checked(data)
    fmt = image.format
    try:
        # Apply the camera's orientation first, since the EXIF that carries it is dropped.
        image = ImageOps.exif_transpose(image)
        image.thumbnail((MAX_SIDE, MAX_SIDE))
        main = _encode(image, fmt)
        thumb_image = image.copy()
        thumb_image.thumbnail((THUMB_SIDE, THUMB_SIDE))
        thumb = _encode(thumb_image, fmt)
    except (OSError, ValueError) as exc:
        raise InvalidImage("The image could not be processed.") from exc
    return main, thumb, fmt, image.width, image.height


def upload_image(*, user: User, data: bytes) -> ImageUpload:
    main, thumb, fmt, width, height = process_image(data)
    ext = ALLOWED_FORMATS[fmt]
    stem = f"listings/{timezone.now():%Y/%m}/{uuid.uuid4().hex}"
    # Stored before the row: a failed insert leaves an orphan file, never a row without a file.
    main_name = default_storage.save(f"{stem}.{ext}", ContentFile(main))
    thumb_name = default_storage.save(f"{stem}_thumb.{ext}", ContentFile(thumb))
    with transaction.atomic(durable=True):
        upload = ImageUpload.objects.create(
            owner=user,
            file=main_name,
            thumbnail=thumb_name,
            width=width,
            height=height,
            format=fmt.lower(),
            size=len(main),
        )
    logger.info("upload user=%s id=%s %sx%s %s", user.pk, upload.pk, width, height, fmt)
    return upload
