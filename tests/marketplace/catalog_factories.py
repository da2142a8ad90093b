"""Builders for catalog tests: a small category tree, images made with Pillow, listings."""

import io

from django.core.files.uploadedfile import SimpleUploadedFile
from django.utils import timezone
from PIL import Image

from marketplace.models import Category, ImageUpload, Listing, ListingStatus
from tests.factories import UserFactory


def image_bytes(fmt: str = "JPEG", size=(64, 48), color=(200, 30, 30), exif=None) -> bytes:
    out = io.BytesIO()
    mode = "RGBA" if fmt == "PNG" else "RGB"
    image = Image.new(mode, size, color)
    kwargs = {"exif": exif} if exif is not None else {}
    image.save(out, fmt, **kwargs)
    return out.getvalue()


def upload_file(data: bytes, name: str = "photo.jpg", content_type: str = "image/jpeg"):
    return SimpleUploadedFile(name, data, content_type=content_type)


def post_upload(api_client, data: bytes, name: str = "photo.jpg", content_type="image/jpeg"):
    return api_client.client.post(
        "/api/uploads/images",
        {"file": upload_file(data, name, content_type)},
        headers={"Authorization": f"Bearer {api_client.token}"},
    )


def category_tree() -> dict[str, Category]:
    phones = Category.objects.create(name="手机", sort_order=1)
    apple = Category.objects.create(name="苹果", parent=phones, sort_order=1)
    android = Category.objects.create(name="安卓", parent=phones, sort_order=2)
    computers = Category.objects.create(name="电脑", sort_order=2)
    laptops = Category.objects.create(name="笔记本", parent=computers, sort_order=1)
    hidden = Category.objects.create(name="隐藏", sort_order=3, is_active=False)
    return {
        "phones": phones,
        "apple": apple,
        "android": android,
        "computers": computers,
        "laptops": laptops,
        "hidden": hidden,
    }


def make_upload(owner, **kw) -> ImageUpload:
    defaults = {
        "file": "listings/test/a.jpg",
        "thumbnail": "listings/test/a_thumb.jpg",
        "width": 10,
        "height": 10,
        "format": "jpeg",
        "size": 100,
    }
    return ImageUpload.objects.create(owner=owner, **{**defaults, **kw})


def make_listing(*, category: Category, seller=None, status=ListingStatus.ON_SALE, **kw) -> Listing:
    seller = seller or UserFactory()
    approved = timezone.now() if status == ListingStatus.ON_SALE else None
    defaults = {
        "title": "九成新 iPhone 13 128G",
        "description": "自用一年，无磕碰，电池健康 90%。",
        "price_fen": 300000,
        "approved_at": approved,
    }
    listing = Listing.objects.create(
        seller=seller, category=category, status=status, **{**defaults, **kw}
    )
    upload = make_upload(seller, listing=listing, consumed_at=timezone.now())
    Listing.objects.filter(pk=listing.pk).update(cover=upload.thumbnail)
    listing.cover = upload.thumbnail
    return listing
