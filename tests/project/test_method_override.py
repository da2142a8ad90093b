"""wx.request cannot send PATCH: a POST with `X-HTTP-Method-Override: PATCH` is a PATCH under
/api/ (and only that: a GET is never turned into a write, nor a POST into a DELETE)."""

import pytest

pytestmark = pytest.mark.django_db


def test_a_post_overridden_to_patch_updates_the_profile(client_of):
    response = client_of.post(
        "/api/me", {"nickname": "改过的名字"}, headers={"X-HTTP-Method-Override": "PATCH"}
    )
    assert response.status_code == 200, response.content
    assert response.json()["nickname"] == "改过的名字"
    client_of.user.refresh_from_db()
    assert client_of.user.nickname == "改过的名字"


@pytest.mark.parametrize("method, override", [("get", "PATCH"), ("post", "DELETE")])
def test_other_overrides_are_ignored(client_of, method, override):
    headers = {"X-HTTP-Method-Override": override}
    if method == "get":
        response = client_of.get("/api/me", headers=headers)
        assert response.status_code == 200
    else:
        response = client_of.post("/api/me", {"nickname": "x"}, headers=headers)
        assert response.status_code == 405, response.content
    client_of.user.refresh_from_db()
    assert client_of.user.nickname != "x"
