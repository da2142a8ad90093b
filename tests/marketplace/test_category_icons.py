"""Issue 18: category icons are uploaded images (an ImageField through the storage API), with a
preview in the admin; the seeded categories get generated icons."""

import io

import pytest
from django.conf import settings
from django.core.files.storage import default_storage
from django.core.management import call_command
from django.test import Client
from PIL import Image

from marketplace.category_icons import ICON_SIDE, draw_icon, give_generated_icons
from marketplace.models import Category
from tests.factories import StaffFactory
from tests.marketplace.catalog_factories import image_bytes, upload_file

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def staff_client():
    client = Client()
    client.force_login(StaffFactory())
    return client


def _icons(anon) -> dict[str, str]:
    tree = anon.get("/api/categories").json()
    return {node["name"]: node["icon"] for root in tree for node in [root, *root["children"]]}


def test_staff_upload_an_icon_in_the_admin_and_the_api_serves_its_url(staff_client, anon):
    category = Category.objects.create(name="相机", sort_order=1)
    response = staff_client.post(
        f"/admin/marketplace/category/{category.pk}/change/",
        {
            "name": "相机",
            "icon": upload_file(image_bytes("PNG", size=(96, 96)), "camera.png", "image/png"),
            "sort_order": 1,
            "is_active": "on",
            "children-TOTAL_FORMS": 0,
            "children-INITIAL_FORMS": 0,
        },
    )
    assert response.status_code == 302, response.content[:2000]
    category.refresh_from_db()
    assert category.icon.name.startswith("category-icons/")
    assert default_storage.exists(category.icon.name)
    url = _icons(anon)["相机"]
    assert url == f"{settings.MEDIA_BASE_URL}{settings.MEDIA_URL}{category.icon.name}"
    # The change page previews it, the list shows it too.
    page = staff_client.get(f"/admin/marketplace/category/{category.pk}/change/").content.decode()
    assert f'src="{url}"' in page
    assert f'src="{url}"' in staff_client.get("/admin/marketplace/category/").content.decode()


def test_a_file_that_is_not_an_image_is_refused_by_the_admin(staff_client):
    category = Category.objects.create(name="游戏")
    response = staff_client.post(
        f"/admin/marketplace/category/{category.pk}/change/",
        {
            "name": "游戏",
            "icon": upload_file(b"not an image", "x.png", "image/png"),
            "sort_order": 0,
            "children-TOTAL_FORMS": 0,
            "children-INITIAL_FORMS": 0,
        },
    )
    assert response.status_code == 200  # the form again, with the error
    category.refresh_from_db()
    assert not category.icon


def test_the_seeded_categories_get_generated_icons(anon):
    call_command("seed_demo")
    icons = _icons(anon)
    assert icons and all(url.startswith(f"{settings.MEDIA_BASE_URL}/") for url in icons.values())
    for category in Category.objects.all():
        with default_storage.open(category.icon.name) as stored:
            assert Image.open(io.BytesIO(stored.read())).size == (ICON_SIDE, ICON_SIDE)
    # Run again: nothing regenerated, uploaded icons never replaced.
    before = dict(Category.objects.values_list("pk", "icon"))
    call_command("seed_demo")
    assert dict(Category.objects.values_list("pk", "icon")) == before


def test_generated_icons_are_deterministic_png_and_keep_uploaded_ones():
    assert draw_icon("手机") == draw_icon("手机") != draw_icon("电脑")
    assert Image.open(io.BytesIO(draw_icon("手机"))).format == "PNG"
    uploaded = Category.objects.create(name="有图标", icon="category-icons/uploaded.png")
    bare = Category.objects.create(name="无图标")
    assert give_generated_icons() == 1
    uploaded.refresh_from_db()
    bare.refresh_from_db()
    assert uploaded.icon.name == "category-icons/uploaded.png"
    assert bare.icon.name.startswith("category-icons/category-")
