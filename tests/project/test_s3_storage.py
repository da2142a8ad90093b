"""Object storage as production configures it: the STORAGES that project/settings.py builds from
AWS_STORAGE_BUCKET_NAME and friends, run through Django's storage API against moto's
S3-compatible server. The documented set-up once failed with ImproperlyConfigured (boto3 was
not installed) and nothing noticed; order videos must only ever be reachable by signed URL."""

import json
import os
import socket
import subprocess
import sys
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import pytest
import requests
from django.core.files.base import ContentFile
from django.core.files.storage import default_storage, storages
from django.test import override_settings

from marketplace.models import Order
from tests.marketplace.fulfilment_helpers import MP4_BYTES, paid_order, post_video

pytestmark = pytest.mark.s3

ROOT = Path(__file__).resolve().parents[2]
BUCKET = "marketplace-media"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="module")
def s3_endpoint():
    from moto.server import ThreadedMotoServer

    port = _free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    endpoint = f"http://127.0.0.1:{port}"
    import boto3

    boto3.client(
        "s3",
        endpoint_url=endpoint,
        region_name="us-east-1",
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
    ).create_bucket(Bucket=BUCKET)
    yield endpoint
    server.stop()


def _aws_env(endpoint: str, **extra: str) -> dict[str, str]:
    return {
        "AWS_STORAGE_BUCKET_NAME": BUCKET,
        "AWS_S3_ENDPOINT_URL": endpoint,
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": "us-east-1",
        **extra,
    }


def _project_storages(env: dict[str, str], tmp_path: Path) -> dict:
    """settings.STORAGES exactly as project/settings.py builds it from this environment."""
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "DJANGO_"))}
    result = subprocess.run(
        [
            sys.executable,
            "-c",
            "import json, django; django.setup(); from django.conf import settings; "
            "print(json.dumps(settings.STORAGES))",
        ],
        cwd=ROOT,
        env={
            **clean,
            **env,
            "DJANGO_SETTINGS_MODULE": "project.settings",
            "MARKETPLACE_VAR_DIR": str(tmp_path),
        },
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout.strip().splitlines()[-1])


@pytest.fixture
def on_s3(s3_endpoint, tmp_path, monkeypatch):
    def configure(**extra: str):
        env = _aws_env(s3_endpoint, **extra)
        for name, value in env.items():  # boto3 reads the credentials from the environment
            monkeypatch.setenv(name, value)
        return override_settings(STORAGES=_project_storages(env, tmp_path))

    return configure


def _is_signed(url: str) -> bool:
    query = parse_qs(urlsplit(url).query)
    return "X-Amz-Signature" in query or "Signature" in query


def test_the_documented_settings_upload_sign_and_delete_through_django(on_s3):
    with on_s3():
        assert storages["default"].__class__.__name__ == "S3Storage"
        name = default_storage.save("listing-images/probe.txt", ContentFile(b"hello s3"))
        assert default_storage.exists(name)

        url = default_storage.url(name)
        assert _is_signed(url), url
        fetched = requests.get(url, timeout=10)
        assert fetched.status_code == 200 and fetched.content == b"hello s3"

        default_storage.delete(name)
        assert not default_storage.exists(name)
        assert requests.get(url, timeout=10).status_code == 404


@pytest.mark.parametrize("custom_domain", ["", "media.example.com"])
def test_order_videos_are_served_by_signed_urls_only(db, on_s3, make_client, custom_domain):
    # A CDN domain makes every "default" URL an unsigned CDN link; a video must stay signed.
    with on_s3(AWS_S3_CUSTOM_DOMAIN=custom_domain):
        buyer, seller, order_no = paid_order(make_client)
        assert post_video(seller, order_no).status_code == 200

        video_url = buyer.get(f"/api/orders/{order_no}").json()["video_url"]

        assert _is_signed(video_url), video_url
        assert urlsplit(video_url).netloc != "media.example.com"
        fetched = requests.get(video_url, timeout=10)
        assert fetched.status_code == 200 and fetched.content == MP4_BYTES
        # Under the private key prefix, never beside the public media.
        assert urlsplit(video_url).path.startswith(f"/{BUCKET}/private/order-videos/"), video_url
        storages["private"].delete(Order.objects.get(order_no=order_no).video.name)
        assert requests.get(video_url, timeout=10).status_code == 404


def test_chat_images_move_to_the_private_prefix_and_are_served_signed(
    db, on_s3, make_client, django_capture_on_commit_callbacks
):
    from tests.marketplace.catalog_factories import image_bytes, upload_file  # noqa: PLC0415
    from tests.negotiation.conversation_helpers import thread_world  # noqa: PLC0415

    with on_s3(AWS_S3_CUSTOM_DOMAIN="media.example.com"):
        seller, buyer, _, conversation = thread_world(make_client)
        upload = buyer.client.post(
            "/api/uploads/images",
            {"file": upload_file(image_bytes())},
            headers={"Authorization": f"Bearer {buyer.token}"},
        ).json()
        public_name = urlsplit(upload["url"]).path.lstrip("/")
        assert default_storage.exists(public_name)
        with django_capture_on_commit_callbacks(execute=True):  # the public files' deletion
            sent = buyer.post(
                f"/api/conversations/{conversation['id']}/messages",
                {"kind": "image", "image_id": upload["id"], "client_id": "s3"},
            )
        assert sent.status_code == 201, sent.content
        url = seller.get(f"/api/conversations/{conversation['id']}/messages").json()["items"][0][
            "image_url"
        ]
        assert _is_signed(url) and urlsplit(url).netloc != "media.example.com", url
        assert urlsplit(url).path.startswith(f"/{BUCKET}/private/chat-images/"), url
        fetched = requests.get(url, timeout=10)
        assert fetched.status_code == 200 and fetched.content[:2] == b"\xff\xd8"  # a JPEG
        assert not default_storage.exists(public_name)  # the public key is gone
