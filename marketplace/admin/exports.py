"""CSV and Excel exports of a changelist, exactly as filtered on screen (the export link carries
the list's query string), each one recorded (StaffExport: who, when, which rows); and the
readers of the bank's result file for the bulk "mark paid" (marketplace.actions.staff_console).

Money is exported in yuan: "1234.56" in CSV (no grouping, so the file reads back exactly), a
number with two decimals and a ¥ format in Excel (Decimal from integer fen, never a float)."""

import csv
import datetime as dt
import io
from collections.abc import Callable
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from django.contrib.admin.options import IncorrectLookupParameters
from django.core.exceptions import PermissionDenied
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseRedirect
from django.urls import path, reverse
from django.utils import timezone
from django.utils.translation import gettext
from openpyxl import Workbook, load_workbook

from marketplace.actions import staff_console
from marketplace.money import yuan

# An export is a file for one day's work, not a database dump.
MAX_EXPORT_ROWS = 20_000
XLSX = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"


@dataclass(frozen=True)
class Column:
    header: str
    get: Callable[[Any], Any]
    # "money": get returns fen (int or None); "text": anything, datetimes in local time.
    kind: str = "text"


# A cell starting with one of these is a formula to Excel and LibreOffice (CSV injection): user
# text (nicknames, titles, holder names) is exported with a leading apostrophe instead (OWASP).
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def _defused(text: str) -> str:
    return f"'{text}" if text.startswith(FORMULA_STARTS) else text


def _csv_value(column: Column, value: Any) -> str:
    if value is None:
        return ""
    if column.kind == "money":
        return yuan(value)
    if isinstance(value, dt.datetime):
        return timezone.localtime(value).strftime("%Y-%m-%d %H:%M:%S")
    return str(value) if isinstance(value, int) else _defused(str(value))


def _xlsx_value(column: Column, value: Any) -> Any:
    if value is None:
        return None
    if column.kind == "money":
        return Decimal(value) / 100
    if isinstance(value, dt.datetime):
        return timezone.localtime(value).replace(tzinfo=None)
    return value if isinstance(value, int | Decimal) else _defused(str(value))


def render_csv(columns: list[Column], rows) -> bytes:
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow([column.header for column in columns])
    for row in rows:
        writer.writerow([_csv_value(column, column.get(row)) for column in columns])
    # A BOM: Excel on Windows opens UTF-8 CSV with Chinese text correctly only with one.
    return ("\ufeff" + out.getvalue()).encode("utf-8")


def render_xlsx(columns: list[Column], rows, *, title: str) -> bytes:
    book = Workbook(write_only=True)
    sheet = book.create_sheet(title=title[:31])
    sheet.append([column.header for column in columns])
    for row in rows:
        sheet.append([_xlsx_value(column, column.get(row)) for column in columns])
    out = io.BytesIO()
    book.save(out)
    return out.getvalue()


# The changelist with the export links (set on each admin: the stubs type it on ModelAdmin).
EXPORT_CHANGE_LIST = "admin/marketplace/export_change_list.html"


class ExportMixin:
    """Adds `export/csv/` and `export/xlsx/` to a ModelAdmin: the changelist's own queryset
    (filters, search, ordering, list_select_related), the columns of `get_export_columns`.
    The admin sets `change_list_template = EXPORT_CHANGE_LIST` for the links."""

    export_name: str = "export"
    export_columns: list[Column] = []

    def get_export_columns(self, request: HttpRequest) -> list[Column]:
        return self.export_columns

    def export_has_full_account_numbers(self, request: HttpRequest) -> bool:
        return False

    def get_urls(self):
        opts = self.model._meta  # type: ignore[attr-defined]  # mixed into ModelAdmin
        view = self.admin_site.admin_view(self.export_view)  # type: ignore[attr-defined]
        return [
            path(
                "export/<str:fmt>/",
                view,
                name=f"{opts.app_label}_{opts.model_name}_export",
            ),
            *super().get_urls(),  # type: ignore[misc]
        ]

    def changelist_view(self, request, extra_context=None):
        opts = self.model._meta  # type: ignore[attr-defined]
        base = reverse(f"admin:{opts.app_label}_{opts.model_name}_export", args=["csv"])
        query = request.GET.urlencode()
        suffix = f"?{query}" if query else ""
        extra = {
            "export_csv_url": base + suffix,
            "export_xlsx_url": base.replace("/csv/", "/xlsx/") + suffix,
        }
        return super().changelist_view(  # type: ignore[misc]
            request, {**(extra_context or {}), **extra}
        )

    def export_view(self, request: HttpRequest, fmt: str) -> HttpResponse:
        if fmt not in ("csv", "xlsx"):
            raise Http404
        if not self.has_view_permission(request):  # type: ignore[attr-defined]
            raise PermissionDenied
        opts = self.model._meta  # type: ignore[attr-defined]
        try:
            changelist = self.get_changelist_instance(request)  # type: ignore[attr-defined]
        except IncorrectLookupParameters:
            # What the changelist itself does with a filter it cannot apply (never a 500).
            url = reverse(f"admin:{opts.app_label}_{opts.model_name}_changelist")
            return HttpResponseRedirect(f"{url}?e=1")
        rows = list(changelist.get_queryset(request)[: MAX_EXPORT_ROWS + 1])
        if len(rows) > MAX_EXPORT_ROWS:
            self.message_user(  # type: ignore[attr-defined]
                request,
                gettext("More than %(count)s rows: filter the list before exporting.")
                % {"count": MAX_EXPORT_ROWS},
                level="error",
            )
            return HttpResponseRedirect(
                reverse(f"admin:{opts.app_label}_{opts.model_name}_changelist")
            )
        columns = self.get_export_columns(request)
        stamp = timezone.localtime().strftime("%Y%m%d-%H%M")
        if fmt == "csv":
            body, content_type = render_csv(columns, rows), "text/csv; charset=utf-8"
        else:
            body, content_type = render_xlsx(columns, rows, title=self.export_name), XLSX
        staff_console.record_export(
            staff=request.user,  # type: ignore[arg-type]  # admin views: staff only
            model=self.model._meta.label_lower,  # type: ignore[attr-defined]
            format=fmt,
            query=request.GET.urlencode(),
            row_count=len(rows),
            has_full_account_numbers=self.export_has_full_account_numbers(request),
        )
        response = HttpResponse(body, content_type=content_type)
        response["Content-Disposition"] = f'attachment; filename="{self.export_name}-{stamp}.{fmt}"'
        return response


# --- Reading the bank's result file -------------------------------------------------------------

ID_HEADERS = {"编号", "提现编号", "id", "withdrawal_id"}
AMOUNT_HEADERS = {"金额（元）", "金额(元)", "金额", "amount", "amount_yuan"}
REFERENCE_HEADERS = {"流水号", "银行流水号", "转账参考号", "reference", "transfer_reference"}


class BankFileError(ValueError):
    pass


def _table(upload) -> list[list[str]]:
    name = (upload.name or "").lower()
    data = upload.read()
    if name.endswith(".xlsx"):
        try:
            sheet = load_workbook(io.BytesIO(data), read_only=True, data_only=True).active
        except Exception as exc:  # openpyxl raises many kinds for a file that is not a workbook
            raise BankFileError(gettext("Cannot read this Excel file.")) from exc
        return [
            ["" if cell is None else _cell_text(cell) for cell in row]
            for row in sheet.iter_rows(values_only=True)
        ]
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError:
        try:
            text = data.decode("gb18030")  # what Chinese banks' and Excel's CSV often are
        except UnicodeDecodeError as exc:
            raise BankFileError(
                gettext("Cannot tell the file's encoding (use a UTF-8 or GBK CSV, or .xlsx).")
            ) from exc
    return list(csv.reader(io.StringIO(text)))


def _cell_text(value: Any) -> str:
    if isinstance(value, float):
        # Excel keeps numbers as floats: 30.1 is read back as "30.1", never 30.100000000000001.
        return repr(value) if value != int(value) else str(int(value))
    return str(value)


def read_bank_result(upload) -> list[staff_console.BankRow]:
    """Rows of the uploaded result (CSV or .xlsx; the exported file with the bank's reference
    filled in will do): a header row naming the id, amount and reference columns."""
    table = [row for row in _table(upload) if any(str(cell).strip() for cell in row)]
    if not table:
        raise BankFileError(gettext("The file is empty."))
    header = [str(cell).strip() for cell in table[0]]

    def header_column(names: set[str], what: str) -> int:
        for index, cell in enumerate(header):
            if cell in names or cell.lower() in names:
                return index
        raise BankFileError(
            gettext('No "%(column)s" column (the header row should have one of: %(names)s).')
            % {"column": what, "names": "、".join(sorted(names))}
        )

    id_col = header_column(ID_HEADERS, "编号")
    amount_col = header_column(AMOUNT_HEADERS, "金额（元）")
    ref_col = header_column(REFERENCE_HEADERS, "流水号")

    def cell(row: list, index: int) -> str:
        return str(row[index]).strip() if index < len(row) else ""

    return [
        staff_console.BankRow(
            line=number,
            withdrawal_id=cell(row, id_col),
            amount=cell(row, amount_col),
            reference=cell(row, ref_col),
        )
        for number, row in enumerate(table[1:], start=2)
    ]
