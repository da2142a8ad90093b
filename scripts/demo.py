"""The whole product in one run: a buyer and a seller use the marketplace the way the
mini-program does, over HTTP and WebSocket, against the server of `make run` (sandbox on).

    make run                                  # in one terminal
    make demo                                 # in another (BASE_URL=http://host:port to change)

Steps: both sign in (sandbox wx.login) and open their sockets; the seller uploads a photo and
publishes; staff approve it in the Django admin (signed in over HTTP like a browser, with the
CSRF token); the buyer bargains over the socket and the seller counters live; the buyer accepts
and pays through the sandbox WeChat Pay; the seller uploads a video, the buyer confirms it; the
seller ships, the sandbox Kuaidi100 moves the parcel; the buyer confirms receipt; the seller's
wallet is credited; the seller adds a payout account and withdraws half; staff mark it paid;
the seller withdraws the rest to the WeChat balance and confirms it (WeChat's merchant transfer,
paid without staff); the day reconciles clean against the sandbox's bills. Each
step prints what happened and the live events each side received. Any failure stops the run
with a message and exit status 1.
"""

import argparse
import asyncio
import contextlib
import io
import json
import re
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import requests
import websockets

# The smallest thing that is an MP4 by content: an ISO media `ftyp` box, brand mp42.
MP4_BYTES = b"\x00\x00\x00\x18ftypmp42\x00\x00\x00\x00mp42isom" + b"\x00" * 64
TRACKING_NO_PREFIX = "YT77"
STAFF_USER, STAFF_PASSWORD = "admin", "admin-demo-2026"
WAIT_SECONDS = 20
ROOT = Path(__file__).resolve().parent.parent


class DemoFailed(Exception):
    pass


def say(text: str) -> None:
    print(text, flush=True)


def step(number: int, text: str) -> None:
    say(f"\n[{number:2d}] {text}")


def yuan(fen: int) -> str:
    return f"¥{fen // 100}.{fen % 100:02d}"


def png_bytes() -> bytes:
    """A small photo; Pillow is part of the project's dependencies."""
    from PIL import Image, ImageDraw

    image = Image.new("RGB", (320, 240), (240, 200, 60))
    ImageDraw.Draw(image).rectangle((60, 40, 260, 200), outline=(40, 40, 40), width=6)
    out = io.BytesIO()
    image.save(out, "PNG")
    return out.getvalue()


class Http:
    """requests with the API's error body turned into a clear failure."""

    def __init__(self, base_url: str, token: str | None = None) -> None:
        self.base_url = base_url
        self.session = requests.Session()
        if token:
            self.session.headers["Authorization"] = f"Bearer {token}"

    def call(self, method: str, path: str, *, expect=(200, 201), **kw) -> Any:
        try:
            response = self.session.request(method, self.base_url + path, timeout=30, **kw)
        except requests.RequestException as exc:
            raise DemoFailed(f"{method} {path}: cannot reach the server ({exc})") from exc
        if response.status_code not in expect:
            raise DemoFailed(
                f"{method} {path} answered {response.status_code}: {response.text[:400]}"
            )
        if response.headers.get("Content-Type", "").startswith("application/json"):
            return response.json()
        return response


class Side:
    """One mini-program user: a token, an HTTP client and a socket read in the background."""

    def __init__(self, name: str, base_url: str, token: str, user: dict) -> None:
        self.name, self.base_url, self.token, self.user = name, base_url, token, user
        self.http = Http(base_url, token)
        self.events: list[dict] = []
        self.replies: dict[str, dict] = {}
        self.changed = asyncio.Event()
        self.socket = None
        self.reader: asyncio.Task | None = None
        self.next_ref = 0

    async def call(self, method: str, path: str, **kw) -> Any:
        return await asyncio.to_thread(self.http.call, method, path, **kw)

    async def open_socket(self) -> None:
        ws_url = re.sub(r"^http", "ws", self.base_url) + f"/ws/?token={self.token}"
        try:
            self.socket = await websockets.connect(ws_url, open_timeout=10, max_size=2**20)
        except Exception as exc:  # noqa: BLE001 - any handshake failure ends the demo clearly
            raise DemoFailed(f"{self.name}: the WebSocket did not open ({exc})") from exc
        self.reader = asyncio.create_task(self._read())

    async def _read(self) -> None:
        try:
            async for raw in self.socket:
                frame = json.loads(raw)
                if frame.get("type") in ("ack", "error"):
                    self.replies[str(frame.get("ref"))] = frame
                elif frame.get("type") != "pong":
                    self.events.append(frame)
                    say(
                        f"       ⇠ {self.name} live: #{frame.get('seq')} {frame.get('type')} "
                        f"{summary(frame)}"
                    )
                self.changed.set()
        except websockets.ConnectionClosed as exc:
            say(f"       ✗ {self.name}'s socket closed ({exc.code})")
            self.changed.set()

    async def _until(self, found, what: str, timeout: float = WAIT_SECONDS):
        deadline = time.monotonic() + timeout
        while True:
            result = found()
            if result is not None:
                return result
            if self.reader and self.reader.done():
                raise DemoFailed(f"{self.name}'s socket closed while waiting for {what}")
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise DemoFailed(f"{self.name} waited {timeout:.0f} s for {what} in vain")
            self.changed.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.changed.wait(), remaining)

    async def wait_event(
        self, type_: str, match=lambda data: True, after: int = 0, hint: str = ""
    ) -> dict:
        def found():
            for frame in self.events[after:]:
                if frame.get("type") == type_ and match(frame.get("data") or {}):
                    return frame
            return None

        try:
            return await self._until(found, f"a live {type_} event")
        except DemoFailed as exc:
            raise DemoFailed(f"{exc}. {hint}" if hint else str(exc)) from None

    async def act(self, action: str, **fields) -> dict:
        """A socket action (negotiation); the server answers with an ack or an error frame."""
        self.next_ref += 1
        ref = f"{self.name}-{self.next_ref}"
        await self.socket.send(json.dumps({"action": action, "id": ref, **fields}))
        reply = await self._until(lambda: self.replies.get(ref), f"the reply to {action}")
        if reply["type"] == "error":
            raise DemoFailed(f"{self.name}'s {action} was refused: {reply.get('data')}")
        return reply["data"]

    async def close(self) -> None:
        if self.socket is not None:
            await self.socket.close()
        if self.reader is not None:
            await asyncio.gather(self.reader, return_exceptions=True)


def summary(frame: dict) -> str:
    data = frame.get("data") or {}
    keys = (
        "tracking_no",
        "order_no",
        "status",
        "price",
        "counter_price",
        "from",
        "to",
        "state",
        "amount",
        "available",
        "title",
        "old_price",
        "new_price",
        "reason",
    )
    parts = [f"{key}={data[key]}" for key in keys if key in data and data[key] is not None]
    if frame.get("type") == "order.shipping_update" and data.get("events"):
        parts.append(str(data["events"][0].get("text", "")))
    return " ".join(parts)[:160]


async def sign_in(base_url: str, name: str, openid: str, nickname: str) -> Side:
    http = Http(base_url)
    code = await asyncio.to_thread(
        http.call, "POST", "/sandbox/wechat/login-code", json={"openid": openid}
    )
    login = await asyncio.to_thread(
        http.call,
        "POST",
        "/api/auth/wechat-login",
        json={"code": code["code"], "nickname": nickname},
    )
    side = Side(name, base_url, login["token"], login["user"])
    say(f"     {name}: signed in as user #{side.user['id']} {nickname} (openid {openid})")
    return side


class Staff:
    """The Django admin over HTTP, as a browser uses it: session cookie plus CSRF token."""

    def __init__(self, base_url: str) -> None:
        self.base_url = base_url
        self.session = requests.Session()

    def _csrf(self, html: str) -> str:
        found = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', html)
        if not found:
            raise DemoFailed("the admin page carries no CSRF token")
        return found.group(1)

    def _post(self, path: str, data: dict) -> requests.Response:
        page = self.session.get(self.base_url + path, timeout=30)
        data = {"csrfmiddlewaretoken": self._csrf(page.text), **data}
        return self.session.post(
            self.base_url + path,
            data=data,
            headers={"Referer": self.base_url + path},
            timeout=30,
        )

    def log_in(self, username: str, password: str) -> None:
        response = self._post(
            "/admin/login/?next=/admin/",
            {"username": username, "password": password, "next": "/admin/"},
        )
        if response.url.rstrip("/").endswith("/admin/login") or "id_password" in response.text:
            raise DemoFailed(
                f"staff login {username!r} was refused: run `make run` (it creates the login "
                "with manage.py ensure_staff) or pass --staff-user/--staff-password"
            )

    def run_action(self, changelist: str, action: str, ids: list[int], **extra) -> str:
        response = self._post(
            changelist, {"action": action, "_selected_action": [str(i) for i in ids], **extra}
        )
        if response.status_code != 200:
            raise DemoFailed(f"admin action {action} answered {response.status_code}")
        messages = re.findall(
            r'<li class="(?:success|info|warning|error)">(.*?)</li>', response.text
        )
        return "; ".join(messages) or "(no message)"


async def main(base_url: str, staff_user: str, staff_password: str) -> None:
    run = time.strftime("%H%M%S")
    say(f"Demo against {base_url} (run {run})")
    try:
        health = requests.get(base_url + "/readyz", timeout=5)
    except requests.RequestException as exc:
        raise DemoFailed(f"no server at {base_url}: start it with `make run` ({exc})") from exc
    if health.status_code != 200:
        raise DemoFailed(f"{base_url}/readyz answered {health.status_code}: {health.text[:200]}")

    step(1, "Seller and buyer sign in with wx.login (sandbox) and open their sockets")
    seller = await sign_in(base_url, "seller", f"demo-seller-{run}", "卖家小林")
    buyer = await sign_in(base_url, "buyer", f"demo-buyer-{run}", "买家阿杰")
    await seller.open_socket()
    await buyer.open_socket()
    say("     both sockets open")
    try:
        await walkthrough(base_url, seller, buyer, staff_user, staff_password, run)
    finally:
        await seller.close()
        await buyer.close()
        say(
            f"\nLive events received: seller {len(seller.events)} "
            f"({', '.join(e['type'] for e in seller.events)}); "
            f"buyer {len(buyer.events)} ({', '.join(e['type'] for e in buyer.events)})"
        )


async def walkthrough(base_url, seller: Side, buyer: Side, staff_user, staff_password, run):
    step(2, "Seller uploads a photo and publishes a listing")
    upload = await seller.call(
        "POST", "/api/uploads/images", files={"file": ("camera.png", png_bytes(), "image/png")}
    )
    categories = await seller.call("GET", "/api/categories")
    leaf = next((c for root in categories for c in root.get("children") or []), None)
    if leaf is None:
        raise DemoFailed("no categories: `make run` loads them with manage.py seed_demo")
    price = 88_800
    listing = await seller.call(
        "POST",
        "/api/listings",
        json={
            "category_id": leaf["id"],
            "title": f"富士 X100V 相机 九五新 ({run})",
            "description": "快门 3000 次，盒说全，送 32G 卡。",
            "features": [{"name": "品牌", "value": "富士"}, {"name": "成色", "value": "95 新"}],
            "image_ids": [upload["id"]],
            "price": price,
        },
    )
    say(f"     listing #{listing['id']} {listing['title']} {yuan(price)}: {listing['status']}")

    step(3, "Staff approve it in the Django admin (signed in over HTTP, CSRF token included)")
    staff = Staff(base_url)
    await asyncio.to_thread(staff.log_in, staff_user, staff_password)
    message = await asyncio.to_thread(
        staff.run_action, "/admin/marketplace/listing/", "approve_selected", [listing["id"]]
    )
    say(f"     admin says: {message}")
    await seller.wait_event("listing.reviewed", lambda d: d.get("id") == listing["id"])
    detail = await buyer.call("GET", f"/api/listings/{listing['id']}")
    if detail["status"] != "on_sale":
        raise DemoFailed(f"the approved listing is {detail['status']}, not on_sale")
    say(f"     the buyer sees it on sale at {yuan(detail['price'])}")

    step(4, "Buyer favourites it (想要); the seller drops the price and the buyer hears it live")
    wanted = await buyer.call("POST", f"/api/listings/{listing['id']}/favorite")
    say(f"     buyer wants it: {wanted['favorite_count']} person(s) want it")
    dropped = price - 3_000
    await seller.call("PATCH", f"/api/listings/{listing['id']}", json={"price": dropped})
    say(f"     seller drops the price to {yuan(dropped)} (the fan-out runs in a Huey task)")
    news = await buyer.wait_event(
        "listing.price_dropped",
        lambda d: (d.get("listing") or {}).get("id") == listing["id"],
        hint="the fan-out task runs in the Huey consumer `make run` starts",
    )
    say(
        f"     buyer heard it: {yuan(news['data']['old_price'])} → "
        f"{yuan(news['data']['new_price'])}"
    )
    centre = await buyer.call("GET", "/api/notifications", params={"unread": "true"})
    entry = next((n for n in centre["items"] if n["type"] == "listing.price_dropped"), None)
    if entry is None:
        raise DemoFailed("the price drop is not in the buyer's notification centre")
    say(f"     notification centre: {entry['title']} · {entry['body']}")

    step(5, "Buyer adds a delivery address (an offer needs one)")
    address = await buyer.call(
        "POST",
        "/api/addresses",
        json={
            "name": "阿杰",
            "phone": "13800138000",
            "province": "上海市",
            "city": "上海市",
            "district": "浦东新区",
            "detail": "张江路 100 号",
            "is_default": True,
        },
    )
    say(f"     address #{address['id']}")

    step(6, "Buyer asks, seller answers, then the live bargain in the same thread")
    thread = await buyer.call("POST", f"/api/listings/{listing['id']}/conversation")
    asked = await buyer.act(
        "message.send", conversation_id=thread["id"], kind="text", text="还在吗？能小刀吗？",
        client_id=f"{run}-ask",
    )
    say(f"     buyer asks in conversation #{thread['id']}: {asked['text']}")
    await seller.wait_event("message.created", lambda d: d.get("id") == asked["id"])
    answered = await seller.act(
        "message.send", conversation_id=thread["id"], kind="text", text="在的，可以出个价",
        client_id=f"{run}-answer",
    )
    say(f"     seller answers live: {answered['text']}")
    await buyer.wait_event("message.created", lambda d: d.get("id") == answered["id"])
    await buyer.act("message.read", conversation_id=thread["id"], up_to=answered["id"])
    offer = await buyer.act("offer.make", listing_id=listing["id"], price=70_000)
    say(f"     buyer's offer #{offer['id']} {yuan(offer['price'])}: ack {offer['status']}")
    await seller.wait_event("offer.created", lambda d: d.get("id") == offer["id"])
    countered = await seller.act("offer.counter", offer_id=offer["id"], price=80_000)
    say(f"     seller counters {yuan(countered['counter_price'])}: ack {countered['status']}")
    await buyer.wait_event("offer.countered", lambda d: d.get("id") == offer["id"])
    accepted = await buyer.act("offer.accept", offer_id=offer["id"])
    order_no = accepted.get("order_no")
    if not order_no:
        raise DemoFailed(f"the accepted offer carries no order: {accepted}")
    say(f"     buyer accepts: order {order_no}")
    await seller.wait_event("offer.accepted", lambda d: d.get("id") == offer["id"])
    history = await seller.call("GET", f"/api/conversations/{thread['id']}/messages")
    in_thread = [m for m in history["items"] if (m.get("offer") or {}).get("id") == offer["id"]]
    if not in_thread:
        raise DemoFailed("the offer does not appear in the buyer and seller's conversation")
    for message in reversed(history["items"]):
        say(f"     thread: [{message['kind']}] {message['text']}")

    step(7, "Buyer pays with WeChat Pay (the sandbox plays the WeChat app)")
    pay = await buyer.call("POST", f"/api/orders/{order_no}/pay", headers={"Idempotency-Key": run})
    prepay_id = pay["pay_params"]["package"].removeprefix("prepay_id=")
    paid = await buyer.call("POST", "/sandbox/wechat/pay", json={"prepay_id": prepay_id})
    say(f"     WeChat Pay: {paid.get('trade_state')}")
    target = (paid.get("notification") or {}).get("target_url", "?")
    await buyer.wait_event(
        "order.status_changed",
        lambda d: d.get("order_no") == order_no and d.get("status") == "awaiting_video",
        hint=(
            f"the sandbox sends WeChat Pay's notification to {target}; if that is not this "
            f"server, restart it with PUBLIC_BASE_URL={base_url}"
        ),
    )
    say("     order is paid and waits for the seller's video")

    step(8, "Seller uploads a video of the item; buyer confirms it")
    await seller.call(
        "POST",
        f"/api/orders/{order_no}/video",
        files={"file": ("item.mp4", MP4_BYTES, "video/mp4")},
    )
    await buyer.wait_event("order.video_ready", lambda d: d.get("order_no") == order_no)
    await buyer.call("POST", f"/api/orders/{order_no}/confirm-video")
    await seller.wait_event(
        "order.status_changed",
        lambda d: d.get("order_no") == order_no and d.get("status") == "awaiting_shipment",
    )

    step(9, "Seller ships with YTO Express; the sandbox Kuaidi100 moves the parcel")
    tracking_no = f"{TRACKING_NO_PREFIX}{int(time.time() * 1000) % 10**11:011d}"
    await seller.call(
        "POST",
        f"/api/orders/{order_no}/ship",
        json={"carrier_code": "yuantong", "tracking_no": tracking_no},
    )
    say(f"     shipped: yuantong {tracking_no}")
    before = len(buyer.events)
    for _ in range(3):
        moved = await buyer.call(
            "POST", "/sandbox/kuaidi100/advance", json={"tracking_no": tracking_no}
        )
        say(f"     parcel event {moved['events_count']} (state {moved['state']})")
        await buyer.wait_event(
            "order.shipping_update",
            lambda d: d.get("tracking_no") == tracking_no,
            after=before,
            hint=f"Kuaidi100's pushes go to PUBLIC_BASE_URL; restart with PUBLIC_BASE_URL={base_url}",
        )
        before = len(buyer.events)
    tracking = await buyer.call("GET", f"/api/orders/{order_no}/tracking")
    for event in tracking.get("events", [])[:3]:
        say(f"       {event.get('time')} {event.get('text')}")

    step(10, "Buyer confirms receipt: the order completes and the seller is credited")
    await buyer.call("POST", f"/api/orders/{order_no}/confirm-receipt")
    await seller.wait_event(
        "order.status_changed",
        lambda d: d.get("order_no") == order_no and d.get("status") == "completed",
    )
    credited = await seller.wait_event("wallet.credited", lambda d: True)
    wallet = await seller.call("GET", "/api/wallet")
    order = await seller.call("GET", f"/api/orders/{order_no}")
    say(
        f"     price {yuan(order['price'])} − commission {yuan(order['commission'] or 0)} → "
        f"available {yuan(wallet['available'])} (event #{credited['seq']})"
    )
    if wallet["available"] != order["price"] - (order["commission"] or 0):
        raise DemoFailed(f"the wallet shows {wallet}, not price − commission")

    step(11, "Seller adds an Alipay account and withdraws half; staff mark it paid in the admin")
    account = await seller.call(
        "POST",
        "/api/wallet/accounts",
        json={"type": "alipay", "holder_name": "林小姐", "account_no": "13900139000"},
    )
    withdrawal = await seller.call(
        "POST",
        "/api/wallet/withdrawals",
        json={"amount": wallet["available"] // 2, "account_id": account["id"]},
        headers={"Idempotency-Key": f"w-{run}"},
    )
    say(f"     withdrawal #{withdrawal['id']} {yuan(withdrawal['amount'])}: {withdrawal['status']}")
    staff = Staff(base_url)
    await asyncio.to_thread(staff.log_in, staff_user, staff_password)
    message = await asyncio.to_thread(
        staff.run_action,
        "/admin/marketplace/withdrawal/",
        "mark_paid",
        [withdrawal["id"]],
        confirm="1",
        **{f"reference_{withdrawal['id']}": f"ALIPAY-{run}"},
    )
    say(f"     admin says: {message}")
    await seller.wait_event(
        "withdrawal.updated",
        lambda d: d.get("id") == withdrawal["id"] and d.get("status") == "paid",
    )
    wallet = await seller.call("GET", "/api/wallet")
    say(f"     wallet now: available {yuan(wallet['available'])}, frozen {yuan(wallet['frozen'])}")

    step(12, "Seller withdraws the rest to the WeChat balance and confirms it: paid, no staff")
    withdrawal = await seller.call(
        "POST",
        "/api/wallet/withdrawals",
        json={"amount": wallet["available"], "to": "wechat_balance"},
        headers={"Idempotency-Key": f"wx-{run}"},
    )
    say(f"     withdrawal #{withdrawal['id']} {yuan(withdrawal['amount'])}: {withdrawal['status']}")
    awaiting = await seller.wait_event(
        "withdrawal.updated",
        lambda d: d.get("id") == withdrawal["id"]
        and d.get("status") == "awaiting_user_confirmation",
    )
    transfer = awaiting["data"]["transfer"]
    say(
        f"     WeChat accepted the transfer: wx.requestMerchantTransfer(mchId={transfer['mch_id']}, "
        f"appId={transfer['app_id']}, package={transfer['package_info'][:16]}…)"
    )
    confirmed = await seller.call(
        "POST", "/sandbox/wechat/confirm-transfer", json={"package_info": transfer["package_info"]}
    )
    say(f"     the seller confirms in WeChat: {confirmed['state']}")
    await seller.wait_event(
        "withdrawal.updated",
        lambda d: d.get("id") == withdrawal["id"] and d.get("status") == "paid",
    )
    wallet = await seller.call("GET", "/api/wallet")
    say(f"     paid by WeChat; wallet now: available {yuan(wallet['available'])}, frozen "
        f"{yuan(wallet['frozen'])}")  # fmt: skip

    step(13, "Today reconciles against the sandbox's WeChat Pay bills")
    today = time.strftime("%Y-%m-%d", time.gmtime(time.time() + 8 * 3600))
    result = await asyncio.to_thread(
        subprocess.run,
        [sys.executable, "manage.py", "reconcile", "--date", today],
        capture_output=True,
        text=True,
        cwd=ROOT,
    )
    report = (result.stdout.strip().splitlines() or [result.stderr.strip()])[-1]
    say(f"     manage.py reconcile --date {today}: {report}")
    if result.returncode != 0 or ": clean;" not in report:
        raise DemoFailed(f"the day does not reconcile clean: {report}")


def cli() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--base-url", default="http://127.0.0.1:8000")
    parser.add_argument("--staff-user", default=STAFF_USER)
    parser.add_argument("--staff-password", default=STAFF_PASSWORD)
    args = parser.parse_args()
    try:
        asyncio.run(main(args.base_url.rstrip("/"), args.staff_user, args.staff_password))
    except DemoFailed as exc:
        print(f"\nDEMO FAILED: {exc}", file=sys.stderr, flush=True)
        return 1
    except KeyboardInterrupt:
        return 130
    say("\nDemo complete: every step of the product worked.")
    return 0


if __name__ == "__main__":
    sys.exit(cli())
