"""Staff watch an order's video through a link signed for them, never a storage path (the
private storage has no public URL): issue 18's rule for everything that is not public."""

import re

import pytest
from django.test import Client

from marketplace.models import Order
from tests.admin.helpers import admin_client, staff_in
from tests.marketplace.fulfilment_helpers import video_uploaded

pytestmark = pytest.mark.django_db


def test_the_order_page_links_the_video_signed_for_the_staff_member(make_client):
    _buyer, _seller, order_no = video_uploaded(make_client)
    order = Order.objects.get(order_no=order_no)
    support = staff_in("support")
    page = admin_client(support).get(f"/admin/marketplace/order/{order.pk}/change/")
    assert page.status_code == 200
    html = page.content.decode()
    assert "/private-media-not-served/" not in html
    links = set(re.findall(r'href="([^"]*/api/private-media/[^"]+)"', html))
    assert len(links) == 1
    (link,) = links
    path = link.split("://", 1)[-1].split("/", 1)[1]
    served = Client().get("/" + path)
    assert served.status_code == 200
    assert b"".join(served.streaming_content) == order.video.read()
