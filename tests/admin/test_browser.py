"""The admin in a real browser: Debian's Chromium (/usr/bin/chromium) driven by Playwright
against the live server. A staff member holding the three roles signs in through the login form,
approves a listing from the review queue, settles a dispute and marks a withdrawal paid.
Screenshots go to test-artifacts/admin-browser/ (CI keeps them).

Skipped, with the reason printed, only when /usr/bin/chromium is absent; `.ci/run` installs it
and sets MARKETPLACE_REQUIRE_BROWSER=1, under which a missing browser fails instead.
Never `playwright install`: browser downloads fail here, the system browser is the one used.
"""

import os
import re
from pathlib import Path

import pytest
from django.conf import settings
from django.contrib.auth.models import Group

from marketplace.actions import wallet as wallet_actions
from marketplace.models import Listing, ListingReview, ListingStatus
from marketplace.models.fulfilment import Dispute
from marketplace.models.orders import Order
from marketplace.models.wallet import Withdrawal
from marketplace.states import OrderStatus
from tests.admin.helpers import staff_in
from tests.admin.test_roles import _pending_withdrawal
from tests.factories import UserFactory
from tests.marketplace.fulfilment_helpers import shipped
from tests.marketplace.order_helpers import listing_on_sale
from tests.marketplace.wallet_helpers import credit, make_account

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless=new",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-dev-shm-usage",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
ARTIFACTS = Path(settings.BASE_DIR) / "test-artifacts" / "admin-browser"
TIMEOUT_MS = 15_000

HAS_CHROMIUM = os.access(CHROMIUM, os.X_OK)
# CI (.ci/run) sets this after installing Chromium: there the test must run, never skip.
BROWSER_REQUIRED = os.environ.get("MARKETPLACE_REQUIRE_BROWSER") == "1"

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(
        not HAS_CHROMIUM and not BROWSER_REQUIRED,
        reason=f"{CHROMIUM} is missing (apt-get install -y chromium; .ci/run does it)",
    ),
]


@pytest.fixture
def browser_page(monkeypatch):
    from playwright.sync_api import sync_playwright

    if not HAS_CHROMIUM:
        pytest.fail(f"MARKETPLACE_REQUIRE_BROWSER=1 but {CHROMIUM} is missing")

    # Playwright's sync API keeps an event loop in this thread; Django would take the test's
    # own ORM calls for calls from async code. They are not: the browser runs in its process.
    monkeypatch.setenv("DJANGO_ALLOW_ASYNC_UNSAFE", "true")
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        page = browser.new_page(viewport={"width": 1280, "height": 900})
        page.set_default_timeout(TIMEOUT_MS)
        try:
            yield page
        finally:
            page.screenshot(path=str(ARTIFACTS / "last.png"), full_page=True)
            browser.close()


def _shot(page, name: str) -> Path:
    path = ARTIFACTS / f"{name}.png"
    page.screenshot(path=str(path), full_page=True)
    print(f"screenshot: {path}")
    return path


def _run_action(page, action: str, pk: int) -> None:
    page.check(f'input[name="_selected_action"][value="{pk}"]')
    page.select_option('select[name="action"]', action)
    page.click('button[name="index"]')


@pytest.fixture
def scene(transactional_db, make_client):
    """The work waiting for staff, made before the browser starts (the API calls push events
    through async_to_sync, which refuses to run beside Playwright's event loop)."""
    staff = staff_in("reviewers", username="ops-lin")
    staff.groups.add(*Group.objects.filter(name__in=["support", "finance"]))
    listing = listing_on_sale(status=ListingStatus.PENDING_REVIEW, title="待审核的相机")
    buyer, _, order_no = shipped(make_client, price_fen=10_000)
    assert buyer.post(f"/api/orders/{order_no}/dispute", {"reason": "镜头有霉"}).status_code == 200
    return {
        "staff": staff,
        "listing": listing,
        "order": Order.objects.get(order_no=order_no),
        "withdrawal": _pending_withdrawal(2500),
    }


def test_staff_review_settle_and_pay_out_in_chromium(live_server, scene, browser_page):
    staff, listing, order, withdrawal = (
        scene["staff"],
        scene["listing"],
        scene["order"],
        scene["withdrawal"],
    )
    order_no = order.order_no
    page = browser_page

    # Sign in through the login form.
    page.goto(f"{live_server.url}/admin/")
    page.fill("#id_username", "ops-lin")
    page.fill("#id_password", "staff-pass-123")
    page.click('input[type="submit"]')
    page.wait_for_selector("#staff-dashboard")
    assert "Listings awaiting review" in page.inner_text("#staff-dashboard")
    _shot(page, "01-dashboard")

    # The review queue, from the dashboard tile.
    page.click('a[data-tile="Listings awaiting review"]')
    page.wait_for_selector(f'input[name="_selected_action"][value="{listing.pk}"]')
    _shot(page, "02-review-queue")
    _run_action(page, "approve_selected", listing.pk)
    page.wait_for_selector(".messagelist")
    assert "Approved 1 listing(s)." in page.inner_text(".messagelist")
    _shot(page, "03-approved")

    # Settle the dispute: open disputes, then the settlement form.
    page.goto(f"{live_server.url}/admin/")
    page.click('a[data-tile="Open disputes"]')
    page.click(f'a.button[href$="/order/{order.pk}/settle/"]')
    page.fill("#id_refund_yuan", "40.00")
    page.fill("#id_note", "镜头确有问题，部分退款，卖家同意")
    _shot(page, "04-settle-form")
    page.click('input[name="settle"]')
    page.wait_for_selector(".messagelist")
    assert f"Dispute on {order_no} settled." in page.inner_text(".messagelist")
    _shot(page, "05-settled")

    # Pay the withdrawal out: the queue, the reference form, the confirmation.
    page.goto(f"{live_server.url}/admin/")
    page.click('a[data-tile="Withdrawals to pay out"]')
    _run_action(page, "mark_paid", withdrawal.pk)
    page.fill(f'input[name="reference_{withdrawal.pk}"]', "ALIPAY-20260301-0001")
    _shot(page, "06-mark-paid-form")
    page.click('input[type="submit"][value^="Mark paid"]')
    page.wait_for_selector(".messagelist")
    assert "Paid 1 withdrawal(s)." in page.inner_text(".messagelist")
    _shot(page, "07-paid")

    listing.refresh_from_db()
    assert listing.status == ListingStatus.ON_SALE
    assert ListingReview.objects.get(listing=listing).staff == staff
    dispute = Dispute.objects.get(order=order)
    assert dispute.settled_by == staff and dispute.refund_fen == 4000
    assert Order.objects.get(pk=order.pk).status == OrderStatus.COMPLETED
    withdrawal.refresh_from_db()
    assert withdrawal.status == Withdrawal.Status.PAID and withdrawal.decided_by == staff
    assert withdrawal.transfer_reference == "ALIPAY-20260301-0001"
    assert Listing.objects.filter(status=ListingStatus.PENDING_REVIEW).count() == 0


@pytest.fixture
def lockout_staff(transactional_db):
    return staff_in("support", username="ops-zhou")


def test_staff_sign_in_is_locked_after_repeated_failures_in_chromium(
    live_server, lockout_staff, chinese_page
):
    # A Chinese browser: the lockout page is translated (English for an English browser).
    page = chinese_page
    page.goto(f"{live_server.url}/admin/")
    for attempt in range(settings.AXES_FAILURE_LIMIT):
        page.fill("#id_username", "ops-zhou")
        page.fill("#id_password", f"wrong-{attempt}")
        page.click('input[type="submit"]')
        if attempt < settings.AXES_FAILURE_LIMIT - 1:
            page.wait_for_selector(".errornote")
    # Locked: the right password is refused too, with the lockout page in Chinese.
    page.goto(f"{live_server.url}/admin/login/?next=/admin/")
    page.fill("#id_username", "ops-zhou")
    page.fill("#id_password", "staff-pass-123")
    with page.expect_response(lambda response: "/admin/login/" in response.url) as answer:
        page.click('input[type="submit"]')
    assert answer.value.status == 429
    page.wait_for_selector("#sign-in-locked")
    assert "登录失败次数过多" in page.inner_text("#sign-in-locked")
    _shot(page, "08-sign-in-locked")
    page.goto(f"{live_server.url}/admin/")
    assert page.locator("#staff-dashboard").count() == 0


@pytest.fixture
def chinese_page(monkeypatch):
    """A browser whose Accept-Language is Chinese, as a staff member's in China."""
    from playwright.sync_api import sync_playwright

    if not HAS_CHROMIUM:
        pytest.fail(f"MARKETPLACE_REQUIRE_BROWSER=1 but {CHROMIUM} is missing")
    monkeypatch.setenv("DJANGO_ALLOW_ASYNC_UNSAFE", "true")
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        page = browser.new_page(viewport={"width": 1280, "height": 900}, locale="zh-CN")
        page.set_default_timeout(TIMEOUT_MS)
        try:
            yield page
        finally:
            browser.close()


@pytest.fixture
def chinese_scene(transactional_db):
    """Seeded categories (with their generated icons) and a listing awaiting review."""
    from django.core.management import call_command

    call_command("seed_demo")
    staff = staff_in("reviewers", username="ops-wang")
    listing = listing_on_sale(
        status=ListingStatus.PENDING_REVIEW, title="待审核的相机", condition="like_new",
        shipping_fee_fen=1_000,
    )  # fmt: skip
    return {"staff": staff, "listing": listing}


def test_staff_read_the_admin_in_chinese_with_category_icons_in_chromium(
    live_server, chinese_scene, chinese_page, settings
):
    settings.MEDIA_BASE_URL = live_server.url  # the icons come from this server's /media/
    page = chinese_page
    page.goto(f"{live_server.url}/admin/")
    page.fill("#id_username", "ops-wang")
    page.fill("#id_password", "staff-pass-123")
    page.click('input[type="submit"]')
    page.wait_for_selector("#result_list")  # a reviewer lands on the review queue (issue 22)
    page.goto(f"{live_server.url}/admin/")
    page.wait_for_selector("#staff-dashboard")
    assert "待审核商品" in page.inner_text("#staff-dashboard")
    _shot(page, "zh-01-dashboard")

    page.goto(f"{live_server.url}/admin/marketplace/listing/")
    page.wait_for_selector("#result_list")
    listing_page = page.inner_text("body")
    assert "成色" in listing_page and "几乎全新" in listing_page and "运费（元）" in listing_page
    assert "通过所选商品" in page.inner_html('select[name="action"]')
    _shot(page, "zh-02-listings")

    page.goto(f"{live_server.url}/admin/marketplace/category/")
    page.wait_for_selector("#result_list img")
    page.wait_for_load_state("load")
    icons = page.locator("#result_list img")
    assert icons.count() >= 5
    # The generated icons load (a broken image has no natural width).
    assert page.evaluate(
        "Array.from(document.querySelectorAll('#result_list img')).every(i => i.naturalWidth > 0)"
    )
    assert "图标预览" in page.inner_text("#result_list thead")
    _shot(page, "zh-03-category-icons")
# --- Each role's own landing (issue 22), and finance's day without touching a row -------------

ROLE_LANDING_PATHS = {
    "reviewers": "/admin/marketplace/listing/?status__exact=pending_review",
    "support": "/admin/marketplace/dispute/?open=yes",
    "finance": "/admin/marketplace/withdrawal/?status__exact=pending&to__exact=account",
}
# What each role must see in its landing's action menu, and another role's page it must not open.
ROLE_ACTIONS = {
    "reviewers": ("approve_selected", "/admin/marketplace/withdrawal/"),
    "support": (None, "/admin/marketplace/withdrawal/"),
    "finance": ("mark_paid", "/admin/marketplace/listing/"),
}


@pytest.fixture
def console_scene(transactional_db, make_client):

    members = {role: staff_in(role, username=f"ops-{role}") for role in ROLE_LANDING_PATHS}
    listing_on_sale(status=ListingStatus.PENDING_REVIEW, title="待审核的相机 佳能 EOS R6 单机身")
    buyer, seller, order_no = shipped(make_client, price_fen=11_111)
    assert buyer.post(f"/api/orders/{order_no}/dispute", {"reason": "镜头有霉"}).status_code == 200
    seller_user = UserFactory(nickname="毕业清仓的小周")
    credit(seller_user, 200_000)
    account = make_account(seller_user, type="alipay", holder_name="李四", account_no="13800138000")

    def withdraw(amount_fen):
        return wallet_actions.request_withdrawal(
            user=seller_user, amount_fen=amount_fen, account_id=account.pk
        )

    withdrawals = [_pending_withdrawal(2500), withdraw(123_456)]
    wrong = withdraw(999)
    return {"members": members, "withdrawals": withdrawals, "wrong": wrong}


def _sign_in_as(page, live_server, username: str) -> None:
    page.goto(f"{live_server.url}/admin/")
    page.fill("#id_username", username)
    page.fill("#id_password", "staff-pass-123")
    page.click('input[type="submit"]')
    page.wait_for_selector("#content")


def test_each_role_lands_on_its_own_queue_in_chromium(live_server, console_scene, chinese_page):
    page = chinese_page  # staff read the console in Chinese, money in yuan
    for role, landing in ROLE_LANDING_PATHS.items():
        page.context.clear_cookies()
        _sign_in_as(page, live_server, f"ops-{role}")
        assert page.url == f"{live_server.url}{landing}", role
        wanted, forbidden = ROLE_ACTIONS[role]
        if wanted:
            options = page.locator('select[name="action"] option').evaluate_all(
                "options => options.map(o => o.value)"
            )
            assert wanted in options, (role, options)
        text = page.inner_text("#content")
        assert re.search(r"[\u4e00-\u9fff]", page.title()), (role, page.title())
        if role == "finance":
            assert "¥1,234.56" in text and "导出 CSV" in text and "上传银行结果" in text
            assert "未处理的对账差异" in text
        _shot(page, f"10-landing-{role}")
        if role == "support":
            page.goto(f"{live_server.url}/admin/marketplace/order/")
            text = page.inner_text("#result_list")
            assert "¥111.11" in text and "11111" not in text
            assert "订单" in page.title(), page.title()
            _shot(page, "11-orders-support")
        response = page.goto(f"{live_server.url}{forbidden}")
        assert response.status == 403, (role, forbidden)


def test_finance_exports_pays_at_the_bank_and_uploads_the_result_in_chromium(
    live_server, console_scene, chinese_page, tmp_path
):
    import csv

    page = chinese_page
    good = console_scene["withdrawals"]
    wrong = console_scene["wrong"]
    _sign_in_as(page, live_server, "ops-finance")

    with page.expect_download() as download:
        page.click("#export-csv")
    exported = tmp_path / "withdrawals.csv"
    download.value.save_as(exported)
    rows = list(csv.reader(exported.read_text(encoding="utf-8-sig").splitlines()))
    assert rows[0][0] == "编号" and len(rows) == 4
    # The bank paid every row; for one the clerk typed a wrong amount into the result.
    result = tmp_path / "bank-result.csv"
    with result.open("w", encoding="utf-8", newline="") as out:
        writer = csv.writer(out)
        writer.writerow(rows[0])
        for row in rows[1:]:
            row[-1] = f"ICBC-{row[0]}"
            if row[0] == str(wrong.pk):
                row[4] = "9.90"
            writer.writerow(row)

    page.click("#bank-result-link")
    page.set_input_files("#id_file", str(result))
    page.click('input[name="upload"]')
    page.wait_for_selector("#bank-result")
    assert "已标记 2 笔提现为已打款" in page.inner_text(".messagelist")
    assert "金额不符" in page.inner_text("#bank-result")
    _shot(page, "12-bank-result")

    for withdrawal in good:
        withdrawal.refresh_from_db()
        assert withdrawal.status == Withdrawal.Status.PAID
        assert withdrawal.transfer_reference == f"ICBC-{withdrawal.pk}"
    wrong.refresh_from_db()
    assert wrong.status == Withdrawal.Status.PENDING
