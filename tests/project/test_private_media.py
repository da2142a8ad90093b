"""Signed private media on local disk: nginx sends the file, only for a valid signature."""

import time

import pytest
from django.core.files.base import ContentFile
from django.core.files.storage import storages
from django.test import override_settings

from marketplace.media import storage_url
from project import private_media

SIGNED = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "private": {"BACKEND": "project.private_media.SignedFileSystemStorage"},
    "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"},
}


@pytest.fixture
def video(settings):
    with override_settings(STORAGES=SIGNED, MEDIA_BASE_URL="https://api.example.test"):
        name = storages["private"].save("order-videos/2026/12/clip.mp4", ContentFile(b"\x00mp4"))
        try:
            yield name
        finally:
            storages["private"].delete(name)


def _path(url: str) -> str:
    return url.removeprefix("https://api.example.test")


def test_the_url_is_absolute_signed_and_expiring(video):
    url = storage_url(video, storage="private")
    assert url.startswith("https://api.example.test/media-private/order-videos/2026/12/")
    assert "e=" in url and "s=" in url


@override_settings(PRIVATE_MEDIA_ACCEL_REDIRECT="/protected-media/")
def test_a_signed_url_is_handed_to_nginx(client, video):
    response = client.get(_path(storage_url(video, storage="private")))
    assert response.status_code == 200
    assert response["X-Accel-Redirect"] == f"/protected-media/{video}"
    assert response["Content-Type"] == "video/mp4"
    assert response["Cache-Control"] == "private, no-store"
    assert response.content == b""  # nginx sends the bytes


@override_settings(PRIVATE_MEDIA_ACCEL_REDIRECT="")
def test_without_nginx_the_app_streams_it(client, video):
    response = client.get(_path(storage_url(video, storage="private")))
    assert response.status_code == 200
    assert b"".join(response.streaming_content) == b"\x00mp4"


def _forgeries(video: str) -> list[str]:
    good = _path(storage_url(video, storage="private"))
    expires = int(time.time()) + 60
    past = int(time.time()) - 1
    return [
        good.replace("s=", "s=0"),  # tampered signature
        good.replace("clip.mp4", "other.mp4"),  # another file with this signature
        f"/media-private/{video}?e={past}&s={private_media.signature(video, past)}",  # expired
        f"/media-private/{video}",  # unsigned
        f"/media-private/{video}?e=abc&s=x",  # malformed
        f"/media-private/../secret?e={expires}&s={private_media.signature('../secret', expires)}",
        f"/media-private/order-videos/none.mp4?e={expires}&s="
        + private_media.signature("order-videos/none.mp4", expires),  # signed, missing
    ]


def test_forged_expired_or_missing_get_the_api_404(client, video):
    for path in _forgeries(video):
        response = client.get(path)
        assert response.status_code == 404, path
        assert response.json()["code"] == "not_found", path
        assert "X-Accel-Redirect" not in response
