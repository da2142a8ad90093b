"""The staff console as staff use it (issue 22): money in yuan on lists, detail pages and forms,
lists that read at a glance and cost the same queries for 1 or 50 rows, exports with their audit
row, the bank-result upload that marks withdrawals paid, and each role's landing."""

import csv
import datetime as dt
import io
from decimal import Decimal

import pytest
from django.contrib import admin
from django.contrib.auth.models import Permission
from django.core.files.uploadedfile import SimpleUploadedFile
from django.core.management import call_command
from django.test import Client
from django.utils import timezone
from django.utils.translation import override
from openpyxl import Workbook, load_workbook

from marketplace.admin.base import YuanField
from marketplace.admin.columns import relative_deadline
from marketplace.models import LedgerEntry, StaffExport, User, Withdrawal
from marketplace.models.orders import PlatformSettings
from marketplace.money import yuan_label
from marketplace.states import OrderStatus
from tests.admin.helpers import admin_client, staff_in
from tests.admin.test_dashboard import make_order
from tests.admin.test_roles import _pending_withdrawal
from tests.factories import StaffFactory, UserFactory
from tests.marketplace.wallet_helpers import VALID_CARD

pytestmark = pytest.mark.django_db

ORDERS = "/admin/marketplace/order/"
WITHDRAWALS = "/admin/marketplace/withdrawal/"
BANK_RESULT = "/admin/marketplace/withdrawal/bank-result/"


# --- Money in yuan -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("typed", "fen"), [("12.34", 1234), ("0.1", 10), ("1,000", 100_000), ("¥5", 500)]
)
def test_the_yuan_field_stores_fen_exactly(typed, fen):
    field = YuanField()
    assert field.clean(typed) == fen


@pytest.mark.parametrize("typed", ["12.345", "1.999", "-1", "abc", "1" * 30])
def test_the_yuan_field_refuses_what_it_would_have_to_round_or_guess(typed):
    from django import forms

    with pytest.raises(forms.ValidationError):
        YuanField().clean(typed)


def test_the_minimum_withdrawal_is_set_in_yuan_and_stored_in_fen():
    settings_row = PlatformSettings.objects.first() or PlatformSettings.objects.create()
    boss = admin_client(StaffFactory())
    url = f"/admin/marketplace/platformsettings/{settings_row.pk}/change/"
    form = boss.get(url).context["adminform"].form
    data = {name: form[name].value() for name in form.fields}
    shown = data["min_withdrawal_fen"]
    assert (
        shown
        == f"{settings_row.min_withdrawal_fen // 100}.{settings_row.min_withdrawal_fen % 100:02d}"
    )

    refused = boss.post(url, {**data, "min_withdrawal_fen": "12.345"})
    assert refused.status_code == 200 and "at most two decimals" in refused.content.decode()
    settings_row.refresh_from_db()
    before = settings_row.min_withdrawal_fen

    saved = boss.post(url, {**data, "min_withdrawal_fen": "12.34"})
    assert saved.status_code == 302
    settings_row.refresh_from_db()
    assert before != 1234 and settings_row.min_withdrawal_fen == 1234
    changes = boss.get("/admin/marketplace/platformsettingschange/").content.decode()
    assert yuan_label(before) in changes and "¥12.34" in changes


def test_the_order_list_and_page_show_yuan_badges_nicknames_and_deadlines():
    order = make_order(OrderStatus.AWAITING_SHIPMENT, price_fen=11_111)
    order.deadline_at = timezone.now() + dt.timedelta(hours=2, minutes=10, seconds=30)
    order.save(update_fields=["deadline_at"])
    order.buyer.nickname, order.buyer.phone = "爱淘宝的阿杰", "13800138000"
    order.buyer.save()
    support = admin_client(staff_in("support"))
    finance = admin_client(staff_in("finance"))

    seen_by_support = support.get(ORDERS).content.decode()
    seen_by_finance = finance.get(ORDERS).content.decode()
    detail = support.get(f"{ORDERS}{order.pk}/change/").content.decode()

    for page in (seen_by_support, seen_by_finance):
        assert "¥111.11" in page and "11111" not in page
        assert "status-badge" in page and "待发货" in page
        assert "爱淘宝的阿杰" in page and "in 2 hours 10 minutes" in page
    # The phone is a hover title, for support (who read users) only.
    assert 'title="13800138000"' in seen_by_support
    assert "13800138000" not in seen_by_finance
    assert "¥111.11" in detail and "11111" not in detail


def test_a_past_deadline_reads_as_overdue():
    now = timezone.now()
    with override("zh-hans"):
        overdue = relative_deadline(now - dt.timedelta(minutes=5, seconds=10), now=now)
        assert overdue == "已超时 5 分"
        assert relative_deadline(now + dt.timedelta(days=1, hours=3), now=now) == "1 天 3 小时后"
    assert relative_deadline(None) == "-"
    with override("en"):
        assert relative_deadline(now - dt.timedelta(minutes=5), now=now) == "overdue by 5 minutes"
        assert relative_deadline(now + dt.timedelta(days=1, hours=1), now=now) == "in 1 day 1 hour"
        assert relative_deadline(now + dt.timedelta(minutes=1), now=now) == "in 1 minute"


def test_staff_search_orders_by_phone_and_withdrawals_by_holder():
    order = make_order(OrderStatus.SHIPPED)
    order.seller.phone = "13911112222"
    order.seller.save()
    other = make_order(OrderStatus.SHIPPED)
    withdrawal = _pending_withdrawal(1000)
    finance = admin_client(staff_in("finance"))

    found = finance.get(ORDERS, {"q": "13911112222"}).context["cl"].result_list
    holders = finance.get(WITHDRAWALS, {"q": "王五"}).context["cl"].result_list
    nobody = finance.get(WITHDRAWALS, {"q": "赵六"}).context["cl"].result_list

    assert [o.pk for o in found] == [order.pk] and other.pk not in [o.pk for o in found]
    assert [w.pk for w in holders] == [withdrawal.pk] and list(nobody) == []


# --- Exports -----------------------------------------------------------------------------------


def _csv_rows(response) -> list[list[str]]:
    text = b"".join(response.streaming_content if response.streaming else [response.content])
    return list(csv.reader(io.StringIO(text.decode("utf-8-sig"))))


def test_finance_exports_the_pending_withdrawals_with_full_numbers_and_it_is_recorded():
    pending = _pending_withdrawal(1234)
    paid = _pending_withdrawal(2000)
    finance_user = staff_in("finance")
    finance = admin_client(finance_user)
    finance.post(
        WITHDRAWALS,
        {"action": "mark_paid", "_selected_action": [paid.pk], "confirm": "1",
         f"reference_{paid.pk}": "B-1"},
    )  # fmt: skip

    listed = finance.get(WITHDRAWALS, {"status__exact": "pending"}).content.decode()
    response = finance.get(f"{WITHDRAWALS}export/csv/", {"status__exact": "pending"})

    assert 'href="/admin/marketplace/withdrawal/export/csv/?status__exact=pending"' in listed
    assert response.status_code == 200 and "attachment" in response["Content-Disposition"]
    rows = _csv_rows(response)
    assert rows[0] == [
        "编号",
        "户名",
        "账号",
        "银行",
        "金额（元）",
        "状态",
        "用户",
        "申请时间",
        "流水号",
    ]
    assert [row[:6] for row in rows[1:]] == [
        [str(pending.pk), "王五", VALID_CARD, "中国银行", "12.34", pending.get_status_display()]
    ]
    assert rows[1][8] == ""  # the reference column, for the bank's result
    export = StaffExport.objects.get()
    assert export.staff == finance_user and export.model == "marketplace.withdrawal"
    assert export.format == "csv" and export.row_count == 1
    assert export.query == "status__exact=pending" and export.has_full_account_numbers
    assert abs((timezone.now() - export.created_at).total_seconds()) < 60


def test_staff_without_the_full_number_right_export_masked_numbers():
    _pending_withdrawal(3000)
    viewer = UserFactory(is_staff=True, openid=None)
    viewer.user_permissions.add(Permission.objects.get(codename="view_withdrawal"))
    response = admin_client(viewer).get(f"{WITHDRAWALS}export/csv/")
    body = response.content.decode("utf-8-sig")
    assert response.status_code == 200 and VALID_CARD not in body
    assert VALID_CARD[-4:] in body and "30.00" in body
    assert StaffExport.objects.get().has_full_account_numbers is False


def test_roles_without_the_list_cannot_export_it_and_nothing_is_recorded():
    _pending_withdrawal(3000)
    for role in ("reviewers", "support"):
        client = admin_client(staff_in(role))
        assert client.get(f"{WITHDRAWALS}export/csv/").status_code == 403, role
    assert admin_client(staff_in("reviewers")).get(f"{ORDERS}export/xlsx/").status_code == 403
    assert admin_client(staff_in("finance")).get(f"{WITHDRAWALS}export/pdf/").status_code == 404
    assert not StaffExport.objects.exists()


def test_orders_export_to_excel_with_amounts_as_exact_numbers():
    make_order(OrderStatus.SHIPPED, price_fen=11_111)
    make_order(OrderStatus.COMPLETED, price_fen=5)
    support = admin_client(staff_in("support"))

    response = support.get(f"{ORDERS}export/xlsx/", {"status__exact": "shipped"})

    assert response.status_code == 200
    sheet = load_workbook(io.BytesIO(response.content)).active
    rows = list(sheet.iter_rows(values_only=True))
    assert rows[0][:4] == ("订单号", "状态", "商品", "金额（元）")
    assert len(rows) == 2 and rows[1][1] == "已发货"
    assert Decimal(str(rows[1][3])) == Decimal("111.11")
    assert StaffExport.objects.get().model == "marketplace.order"


def test_ledger_entries_export_in_yuan():
    _pending_withdrawal(2500)  # a sale credit of 100.00, then a hold of 25.00
    response = admin_client(staff_in("finance")).get("/admin/marketplace/ledgerentry/export/csv/")
    rows = _csv_rows(response)
    assert rows[0][4] == "可用变动（元）"
    assert sorted(row[4] for row in rows[1:]) == sorted(
        f"{e.available_delta_fen / 100:.2f}" for e in LedgerEntry.objects.all()
    )
    assert "-25.00" in [row[4] for row in rows[1:]] and len(rows) == 1 + LedgerEntry.objects.count()


# --- Bank result upload ------------------------------------------------------------------------


def _bank_csv(rows) -> SimpleUploadedFile:
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(["编号", "户名", "金额（元）", "流水号"])
    writer.writerows(rows)
    return SimpleUploadedFile("result.csv", out.getvalue().encode("utf-8"), "text/csv")


def test_a_bank_file_with_one_good_row_one_wrong_amount_and_one_unknown_id_pays_exactly_one():
    good = _pending_withdrawal(3000)
    wrong = _pending_withdrawal(4000)
    finance = admin_client(staff_in("finance"))
    unknown_id = Withdrawal.objects.order_by("-pk").first().pk + 100
    upload = _bank_csv(
        [
            [good.pk, "王五", "30.00", "ICBC-0001"],
            [wrong.pk, "王五", "40.01", "ICBC-0002"],
            [unknown_id, "某人", "10.00", "ICBC-0003"],
        ]
    )

    response = finance.post(BANK_RESULT, {"file": upload})

    page = response.content.decode()
    assert response.status_code == 200
    assert list(Withdrawal.objects.filter(status="paid").values_list("pk", flat=True)) == [good.pk]
    good.refresh_from_db()
    assert good.transfer_reference == "ICBC-0001" and good.decided_by == finance.user
    assert "金额不符：文件为 ¥40.01" in page and "为 ¥40.00" in page
    assert f"找不到提现 #{unknown_id}" in page
    outcomes = response.context["outcomes"]
    assert [o.is_paid for o in outcomes] == [True, False, False]

    again = finance.post(BANK_RESULT, {"file": _bank_csv([[good.pk, "王五", "30.00", "X"]])})
    assert not again.context["outcomes"][0].is_paid
    good.refresh_from_db()
    assert good.transfer_reference == "ICBC-0001"


def test_the_exported_excel_file_with_references_filled_in_pays_them():
    first, second = _pending_withdrawal(1234), _pending_withdrawal(999)
    finance = admin_client(staff_in("finance"))
    exported = finance.get(f"{WITHDRAWALS}export/xlsx/", {"status__exact": "pending"})
    sheet = load_workbook(io.BytesIO(exported.content)).active
    rows = [list(row) for row in sheet.iter_rows(values_only=True)]
    book = Workbook()
    result = book.active
    result.append(rows[0])
    for row in rows[1:]:
        row[-1] = f"BANK-{row[0]}"
        result.append(row)
    out = io.BytesIO()
    book.save(out)

    finance.post(BANK_RESULT, {"file": SimpleUploadedFile("result.xlsx", out.getvalue())})

    for withdrawal in (first, second):
        withdrawal.refresh_from_db()
        assert (
            withdrawal.status == "paid" and withdrawal.transfer_reference == f"BANK-{withdrawal.pk}"
        )


def test_a_file_without_the_columns_is_refused_and_only_finance_may_upload():
    withdrawal = _pending_withdrawal(3000)
    finance = admin_client(staff_in("finance"))
    bad = SimpleUploadedFile("x.csv", b"a,b\n1,2\n", "text/csv")
    response = finance.post(BANK_RESULT, {"file": bad})
    assert response.status_code == 200 and "No &quot;编号&quot; column" in response.content.decode()
    for role in ("reviewers", "support"):
        client = admin_client(staff_in(role))
        upload = _bank_csv([[withdrawal.pk, "王五", "30.00", "R"]])
        assert client.post(BANK_RESULT, {"file": upload}).status_code == 403
    assert Withdrawal.objects.get(pk=withdrawal.pk).status == "pending"


# --- Per-role landing and the demo logins ------------------------------------------------------


def _sign_in(user: User) -> str:
    response = Client().post(
        "/admin/login/?next=/admin/", {"username": user.username, "password": "staff-pass-123"}
    )
    assert response.status_code == 302
    return response["Location"]


@pytest.mark.parametrize(
    ("role", "landing", "others"),
    [
        (
            "reviewers",
            "/admin/marketplace/listing/?status__exact=pending_review",
            ["/admin/marketplace/dispute/", WITHDRAWALS],
        ),
        ("support", "/admin/marketplace/dispute/?open=yes", [WITHDRAWALS, BANK_RESULT]),
        (
            "finance",
            "/admin/marketplace/withdrawal/?status__exact=pending&to__exact=account",
            ["/admin/marketplace/listing/", "/admin/marketplace/user/"],
        ),
    ],
)
def test_each_role_lands_on_its_own_queue_and_not_on_the_others(role, landing, others):
    member = staff_in(role)
    assert _sign_in(member) == landing
    client = admin_client(member)
    assert client.get(landing).status_code == 200
    for url in others:
        assert client.get(url).status_code == 403, url


def test_several_roles_or_a_superuser_land_on_the_dashboard_and_a_next_page_is_kept():
    from django.contrib.auth.models import Group

    both = staff_in("support")
    both.groups.add(Group.objects.get(name="finance"))
    boss = StaffFactory()
    boss.set_password("staff-pass-123")
    boss.save()
    assert _sign_in(both) == "/admin/" and _sign_in(boss) == "/admin/"
    finance = staff_in("finance")
    kept = Client().post(
        "/admin/login/?next=/admin/marketplace/ledgerentry/",
        {"username": finance.username, "password": "staff-pass-123"},
    )
    assert kept["Location"] == "/admin/marketplace/ledgerentry/"


def test_the_demo_seeds_one_login_per_role_and_prints_them(capsys):
    from tests.admin.helpers import ensure_staff_groups

    ensure_staff_groups()
    out = io.StringIO()
    call_command("ensure_staff", stdout=out)
    printed = out.getvalue()
    for username, group in [
        ("demo-reviewer", "reviewers"),
        ("demo-support", "support"),
        ("demo-finance", "finance"),
    ]:
        user = User.objects.get(username=username)
        assert list(user.groups.values_list("name", flat=True)) == [group]
        assert user.is_staff and not user.is_superuser
        assert f"username={username}" in printed
    assert "username=admin" in printed


def test_no_list_detail_page_or_inline_shows_a_raw_fen_field():
    from django.test import RequestFactory

    request = RequestFactory().get("/admin/")
    request.user = StaffFactory()
    shown_raw = []
    for model, model_admin in admin.site._registry.items():
        names = [*model_admin.get_list_display(request), *model_admin.get_fields(request, None)]
        for inline in model_admin.get_inline_instances(request):
            names += list(inline.get_fields(request, None))
        for name in names:
            if isinstance(name, str) and name.endswith("_fen"):
                form_field = model_admin.get_form(request, None).base_fields.get(name)
                if not isinstance(form_field, YuanField):  # typed in yuan, shown in yuan
                    shown_raw.append(f"{model._meta.label_lower}.{name}")
    assert shown_raw == []


def test_wallet_ledger_and_listing_pages_read_in_yuan():
    withdrawal = _pending_withdrawal(2345)
    boss = admin_client(StaffFactory())
    wallet = withdrawal.user.wallet
    wallet_page = boss.get(f"/admin/marketplace/wallet/{wallet.pk}/change/").content.decode()
    ledger_page = boss.get("/admin/marketplace/ledgerentry/").content.decode()
    listing = make_order(OrderStatus.SHIPPED, price_fen=11_111).listing
    listing_page = boss.get(f"/admin/marketplace/listing/{listing.pk}/change/").content.decode()

    assert yuan_label(wallet.available_fen) in wallet_page
    assert yuan_label(wallet.frozen_fen) in wallet_page
    assert yuan_label(-withdrawal.amount_fen) in ledger_page
    assert yuan_label(listing.price_fen) in listing_page


def test_an_export_with_a_filter_it_cannot_apply_goes_back_to_the_list_and_records_nothing():
    finance = admin_client(staff_in("finance"))
    response = finance.get(f"{WITHDRAWALS}export/csv/", {"created_at__gte": "not-a-date"})
    assert response.status_code == 302 and response["Location"].endswith("?e=1")
    assert not StaffExport.objects.exists()


def test_user_text_that_looks_like_a_formula_is_exported_as_text():
    order = make_order(OrderStatus.SHIPPED)
    order.buyer.nickname = '=HYPERLINK("http://evil.example","点我")'
    order.buyer.save()
    support = admin_client(staff_in("support"))

    rows = _csv_rows(support.get(f"{ORDERS}export/csv/"))
    sheet = load_workbook(io.BytesIO(support.get(f"{ORDERS}export/xlsx/").content)).active
    cells = list(sheet.iter_rows(values_only=True))[1]

    buyer_column = rows[0].index("买家")
    assert rows[1][buyer_column] == "'" + order.buyer.nickname
    assert cells[buyer_column] == "'" + order.buyer.nickname


def test_an_oversized_or_garbled_bank_file_is_refused_without_paying():
    withdrawal = _pending_withdrawal(3000)
    finance = admin_client(staff_in("finance"))
    big = SimpleUploadedFile("big.csv", b"x" * (2 * 1024 * 1024 + 1), "text/csv")
    garbled = SimpleUploadedFile("bad.xlsx", b"not a workbook", "application/octet-stream")

    too_big = finance.post(BANK_RESULT, {"file": big})
    not_excel = finance.post(BANK_RESULT, {"file": garbled})

    assert too_big.status_code == 200 and "too large" in too_big.content.decode()
    assert (
        not_excel.status_code == 200 and "Cannot read this Excel file" in not_excel.content.decode()
    )
    assert Withdrawal.objects.get(pk=withdrawal.pk).status == "pending"
