"""Image uploads: judged by content, re-encoded (no EXIF), thumbnailed, stored via Django storage.

Limits (docs/catalog.md "Uploads"): JPEG/PNG/WebP by content whatever the name says,
≤ MAX_UPLOAD_BYTES, ≤ MAX_PIXELS declared and ≤ MAX_DECODED_PIXELS decoded, one frame (a small
file can decode to gigabytes: a "decompression bomb"); all judged from the header.
"""

import io
import logging
import posixpath
import uuid
import warnings
from dataclasses import dataclass

from django.core.files.base import ContentFile
from django.core.files.storage import default_storage, storages
from django.db import transaction
from django.utils import timezone
from PIL import Image, ImageOps, UnidentifiedImageError

from marketplace.errors import DomainError, PayloadTooLarge
from marketplace.models import ImageUpload, User

logger = logging.getLogger("marketplace.uploads")

MAX_UPLOAD_BYTES = 10 * 1024 * 1024
# The largest canvas a header may declare: a 50 MP phone photo is 8160x6120.
MAX_PIXELS = 50_000_000
# What an image may decode to in memory: 16 MP, 64 MB as RGBA. The header decides before any
# pixel is decoded: a 151 KB PNG declaring 39.9 MP RGBA decoded to 160 MB, and eight at once
# took a worker past 2 GB. JPEGs are decoded at a reduced scale (draft mode, 1/2 to 1/8), so a
# large camera photo still fits; PNG and WebP decode in full and must fit as they are.
MAX_DECODED_PIXELS = 16_000_000
# Only the first frame is kept, so an animation is refused rather than half stored.
MAX_FRAMES = 1
MAX_SIDE = 2560  # stored images are downscaled to this; nobody needs more on a phone
THUMB_SIDE = 480  # list-size thumbnail (cover in the two-column feed)
AVATAR_SIDE = 256  # avatars are stored square, this size: WeChat shows them at most 132 px
ALLOWED_FORMATS = {"JPEG": "jpg", "PNG": "png", "WEBP": "webp"}

# Pillow's own bomb guard (warning above, error above twice this); we check before decoding
# too, but this keeps any other Image.open in the process safe.
Image.MAX_IMAGE_PIXELS = MAX_PIXELS


class InvalidImage(DomainError):
    status = 422
    code = "invalid_image"
    message = "Send a JPEG, PNG or WebP image."


def _too_large(width: int, height: int, limit: int) -> InvalidImage:
    return InvalidImage(
        "The image is too large (%(width)sx%(height)s); at most %(limit)s pixels.",
        code="image_too_large",
        params={"width": width, "height": height, "limit": limit},
    )


def _jpeg_scale(width: int, height: int) -> int:
    """The JPEG decoder scales by 1/2, 1/4 or 1/8 while decoding: the smallest image whose long
    side is still at least MAX_SIDE (what is stored), scaled further if that would still decode
    to more than MAX_DECODED_PIXELS."""
    scale = 1
    while scale < 8 and max(width, height) // (scale * 2) >= MAX_SIDE:
        scale *= 2
    while scale < 8 and (width // scale) * (height // scale) > MAX_DECODED_PIXELS:
        scale *= 2
    return scale


def _open_checked(data: bytes) -> Image.Image:
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            probe = Image.open(io.BytesIO(data))
            if probe.format not in ALLOWED_FORMATS:
                raise InvalidImage(
                    "%(format)s images are not accepted; send JPEG, PNG or WebP.",
                    params={"format": probe.format or "?"},
                )
            width, height = probe.size
            if width < 1 or height < 1 or width * height > MAX_PIXELS:
                raise _too_large(width, height, MAX_PIXELS)
            if getattr(probe, "n_frames", 1) > MAX_FRAMES:
                raise InvalidImage(
                    "Animated images are not accepted; send a still photo.", code="image_animated"
                )
            probe.verify()  # structure and checksums, without decoding pixels
            image = Image.open(io.BytesIO(data))  # verify() leaves the image unusable
            if image.format == "JPEG":
                # The size shrinks now, before load() allocates anything.
                scale = _jpeg_scale(width, height)
                image.draft(image.mode, (width // scale, height // scale))
            decoded_width, decoded_height = image.size
            if decoded_width * decoded_height > MAX_DECODED_PIXELS:
                raise _too_large(width, height, MAX_DECODED_PIXELS)
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


def _checked_upload(data: bytes) -> tuple[Image.Image, str]:
    """The upload opened as an image and its format, after the size and content checks every
    image goes through (listing photos and avatars alike)."""
    if len(data) > MAX_UPLOAD_BYTES:
        raise PayloadTooLarge(
            "Images are limited to %(mb)s MB.", params={"mb": MAX_UPLOAD_BYTES // (1024 * 1024)}
        )
    if not data:
        raise InvalidImage("The file is empty.")
    image = _open_checked(data)
    fmt = image.format
    assert fmt is not None  # _open_checked admits known formats only
    return image, fmt


def process_image(data: bytes) -> tuple[bytes, bytes, str, int, int]:
    """(main bytes, thumbnail bytes, format, width, height) of an upload, or InvalidImage."""
    image, fmt = _checked_upload(data)
    try:
        # Downscaled in place first (the bounding box is square, so turning after gives the
        # same picture, with one small copy instead of a full-size one); then the camera's
        # orientation is applied, since the EXIF that carries it is dropped.
        image.thumbnail((MAX_SIDE, MAX_SIDE))
        image = ImageOps.exif_transpose(image)
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


@dataclass(frozen=True)
class PrivateCopy:
    """An upload's image and thumbnail copied into the private storage (`copy_to_private`)."""

    file: str
    thumbnail: str

    def discard(self) -> None:
        """The copies were not used (the send failed): nothing keeps them."""
        delete_files([self.file, self.thumbnail], storage="private")


def copy_to_private(upload: ImageUpload, *, folder: str) -> PrivateCopy:
    """Copies an upload's image and thumbnail from the public storage into the private one under
    `folder`, keeping their file names (the name ends the URL: the type is judged by it). The
    public files stay until the caller deletes them, once the row names the copies."""
    names = []
    for name in (upload.file, upload.thumbnail):
        with default_storage.open(name, "rb") as public:
            names.append(storages["private"].save(f"{folder}/{posixpath.basename(name)}", public))
    return PrivateCopy(file=names[0], thumbnail=names[1])


def delete_files(names: list[str], *, storage: str = "default") -> None:
    for name in names:
        if name:
            storages[storage].delete(name)


def process_avatar(data: bytes) -> tuple[bytes, str]:
    """(square avatar bytes, format) of an upload, checked exactly as listing images are."""
    image, fmt = _checked_upload(data)
    try:
        image = ImageOps.exif_transpose(image)
        # Centre-cropped to a square, then scaled: an avatar is shown in a circle or a square.
        square = ImageOps.fit(image, (AVATAR_SIDE, AVATAR_SIDE), method=Image.Resampling.LANCZOS)
        return _encode(square, fmt), fmt
    except (OSError, ValueError) as exc:
        raise InvalidImage("The image could not be processed.") from exc


def store_avatar(*, user: User, data: bytes) -> str:
    """Stores a new avatar file (never overwriting one) and returns its storage name; the caller
    makes it the user's avatar."""
    square, fmt = process_avatar(data)
    name = f"avatars/{user.pk}/{uuid.uuid4().hex}.{ALLOWED_FORMATS[fmt]}"
    return default_storage.save(name, ContentFile(square))
