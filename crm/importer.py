"""CSV and Excel import into any spec-driven entity: read the file robustly, propose a column
mapping, coerce each column by its field spec, resolve references by name, plan (dry run), then
write every valid row in one transaction that can be undone.

The same functions serve the Import page and `python -m crm import`. Rows go through the
entities' own insert and update commands, so validation, permissions and audit are those of
the forms; the audit rows carry the import's id.

Big CSV files go set-based (the fast path, below): DuckDB's read_csv stages the file, SQL
converts and checks every row at once, and INSERT ... SELECT writes them. On PostgreSQL, which
has no read_csv, leads, customers, products, contacts, tasks and activities (PG_TABLES) go the
same way (new records, and updates and upserts by key), and new deals (importer_pg_deals): the
file is read and checked by the
same SQL in an in-memory DuckDB of this process; PostgreSQL answers only what the checks ask
of the records (which of the file's keys and unique codes records have, sent as one JSON array
each and skipped when no record has any; the names of the records a link column's texts name,
importer_refs.ref_map; for
an update, copies of the records the keys name, pg_snapshot), and execute() COPYs the rows to
write into a TEMP table of the import's one transaction, from which the same INSERT ... SELECT
and version-checked UPDATE ... FROM statements write the records (ids drawn from their
sequence), import_records and audit_log: all or none. Undo is set-based there too
(importer_updates.undo_updates). Other entities go row by row on PostgreSQL, with a note why.
Moving only keys and the rows to write between the engines is the simplest honest split:
PostgreSQL has no reader for the file and DuckDB cannot see PostgreSQL's tables here (no
postgres extension), and the checks stay one SQL text for both engines."""
from __future__ import annotations

import csv
import difflib
import io
import json
import os
import re
import tempfile
import threading
import time
import uuid
import weakref
from dataclasses import dataclass, field
from datetime import date, datetime, time as dt_time
from decimal import Decimal, InvalidOperation

import duckdb
import pandas as pd

from crm import (audit, dialect, i18n, importer_kept, importer_near, importer_pg_deals,
                 records, rules, stage_spans)
from crm.auth import PermissionDenied, User, require
from crm.db import Database
from crm.fields import Field, ValidationError, convert, validate
from crm.i18n import N_, gettext as _

MAX_BYTES = 200 * 1024 * 1024
FAST_ROWS = 100_000  # CSV files with more lines go through the set-based fast path
MODES = ("create", "upsert", "update")
MISSING = {"", "null", "none", "n/a", "na", "-", "—", "nan", "#n/a"}
TRUE = {"1", "true", "yes", "y", "t", "x", "✓", "ja", "taip", "bale", "بله", "آری", "si", "oui"}
FALSE = {"0", "false", "no", "n", "f", "ne", "nein", "non", "خیر", "نه"}
# the importer's own mapping targets, by table: values used when a record is created, not
# fields of its form (a deal's engage date and close date: its history starts then)
PSEUDO: dict[str, dict[str, Field]] = {"deals": {
    "created_at": Field("created_at", N_("Engaged on (deal created)"), "date"),
    "closed_on": Field("closed_on", N_("Closed on"), "date"),
    "product_lines": Field(
        "product_lines", N_("Product lines"), "longtext",
        help=N_("Products by name or code, separated by “;”, each with an optional quantity: "
                "“GTX Pro x 2; SKU-7”. A deal without an amount in the file is priced from "
                "them; a deal that exists gets them instead of its own.")),
}}


class ImportFileError(ValueError):
    """The file cannot be read as a table; the message says why, for people."""


# --- reading ---------------------------------------------------------------------------------

@dataclass
class Source:
    filename: str
    headers: list[str]
    rows: list[list[str]]  # data rows as text, padded or cut to the headers' width
    encoding: str | None = None  # None for Excel
    delimiter: str | None = None
    ragged: list[int] = field(default_factory=list)  # rows (header = 1) of another width
    # a big CSV kept as a UTF-8 file for DuckDB's own reader (the fast path); its rows are
    # parsed in Python only if the row path needs them
    path: str | None = None
    # False while only the head of such a file was read as UTF-8 (see _settle)
    settled: bool = True

    def column(self, index: int) -> list[str]:
        return [row[index] for row in self.rows]


def read(data: bytes, filename: str, encoding: str | None = None,
         delimiter: str | None = None, sheet: str | None = None,
         fast: bool | None = None, file_path: str | None = None) -> Source:
    """A table from CSV/TSV bytes (encoding and delimiter detected unless given) or an xlsx
    workbook (its first sheet unless one is named).

    A CSV of more than FAST_ROWS lines (or any CSV with fast=True) is kept as a file for the
    set-based fast path; its rows are parsed in Python only when the row path needs them.
    file_path, when the bytes are that file's content (the command line), lets DuckDB read a
    UTF-8 file where it is instead of from a copy."""
    if not data:
        raise ImportFileError(_("The file is empty."))
    if len(data) > MAX_BYTES:
        raise ImportFileError(_("The file is larger than {size} MB; split it or use the "
                                "command line.").format(size=MAX_BYTES // 1024 // 1024))
    if data[:4] == b"PK\x03\x04":
        return _read_xlsx(data, filename, sheet)
    big = fast or (fast is None and data.count(b"\n") > FAST_ROWS)
    if big and encoding is None and b"\x00" not in data \
            and not data.startswith((b"\xef\xbb\xbf", b"\xff\xfe", b"\xfe\xff")):
        # a big UTF-8 file is not decoded here as a whole (0.3 s a 100 MB): its head is, and
        # DuckDB's reader checks the rest; bytes that are not UTF-8 after all send the file
        # back through the detection (_settle)
        head = _utf8_head(data)
        if head is not None:
            found = _file_source(data, head, filename, "utf-8", delimiter or _delimiter(head),
                                 file_path=file_path, settled=False)
            if found is not None:
                return found
    text, found_encoding = _decode(data, encoding)
    if "\x00" in text:
        raise ImportFileError(_("This does not look like a text (CSV) file: it holds binary "
                                "data."))
    sep = delimiter or _delimiter(text)
    if fast or (fast is None and text.count("\n") > FAST_ROWS):
        return _file_source(data, text, filename, found_encoding, sep)
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=sep)
    try:
        table = [row for row in reader if any(cell.strip() for cell in row)]
    except csv.Error as exc:
        raise ImportFileError(_("The file cannot be read as CSV: {reason}").format(
            reason=exc)) from None
    return _source(filename, table, found_encoding, sep)


def _source(filename: str, table: list[list], encoding, delimiter) -> Source:
    if not table:
        raise ImportFileError(_("The file holds no rows."))
    headers = [str(h or "").strip() for h in table[0]]
    if not any(headers):
        raise ImportFileError(_("The first row must name the columns."))
    headers = [h or _("Column {n}").format(n=i + 1) for i, h in enumerate(headers)]
    width, ragged, rows = len(headers), [], []
    for line, row in enumerate(table[1:], start=2):
        cells = ["" if c is None else str(c) for c in row]
        if len(cells) != width:
            ragged.append(line)
            cells = (cells + [""] * width)[:width]
        rows.append(cells)
    if not rows:
        raise ImportFileError(_("The file has a header row but no data rows."))
    return Source(filename, headers, rows, encoding, delimiter, ragged)


class _FileRows:
    """The data rows of a file-backed Source, parsed by Python's csv module only when asked
    for (the row path, or a look at single rows); its length may be told by the staging."""

    def __init__(self, source_path: str, delimiter: str, width: int):
        self._path, self._delimiter, self._width = source_path, delimiter, width
        self._rows: list | None = None
        self.ragged: list[int] = []
        self.known_len: int | None = None
        self.source: Source | None = None  # set by _file_source (to settle its encoding)

    def _parsed(self) -> list:
        if self._rows is None:
            if self.source is not None:
                _settle(self.source)
            with open(self._path, encoding="utf-8", newline="") as handle:
                table = [row for row in csv.reader(handle, delimiter=self._delimiter)
                         if any(cell.strip() for cell in row)]
            rows = []
            for line, row in enumerate(table[1:], start=2):
                if len(row) != self._width:
                    self.ragged.append(line)
                    row = (row + [""] * self._width)[:self._width]
                rows.append(row)
            self._rows = rows
        return self._rows

    def __len__(self) -> int:
        if self._rows is None and self.known_len is not None:
            return self.known_len
        return len(self._parsed())

    def __getitem__(self, index):
        return self._parsed()[index]

    def __iter__(self):
        return iter(self._parsed())


def _utf8_head(data: bytes, size: int = 1_000_000) -> str | None:
    """The first megabyte of the bytes (cut at a line end) as UTF-8 text; None if it is not."""
    head = data[:size]
    if len(data) > size:
        cut = head.rfind(b"\n")
        head = head[:cut + 1] if cut > 0 else head
    try:
        return head.decode("utf-8")
    except UnicodeDecodeError:
        return None


def _file_source(data: bytes, text: str, filename: str, encoding: str, sep: str,
                 file_path: str | None = None, settled: bool = True) -> Source | None:
    """A Source over a UTF-8 copy of the file (or over the file itself, when it is UTF-8
    and its path is known), for DuckDB's CSV reader. The header is read here from text (the
    whole file, or only its head while the rest is not known to be UTF-8: not settled), the
    rows later (by DuckDB, or by Python if the row path needs them). None when an unsettled
    head does not name the columns (the caller then decodes the whole file)."""
    try:
        header = next(csv.reader(io.StringIO(text[:1_000_000], newline=""), delimiter=sep),
                      None)
    except csv.Error as exc:
        raise ImportFileError(_("The file cannot be read as CSV: {reason}").format(
            reason=exc)) from None
    if not header or not any(str(h).strip() for h in header):
        if not settled:
            return None
        return _source(filename, list(csv.reader(io.StringIO(text, newline=""),
                                                 delimiter=sep)), encoding, sep)
    temporary = not (file_path and encoding == "utf-8")
    path = _copy(data, text, encoding) if temporary else str(file_path)
    headers = [str(h or "").strip() for h in header]
    headers = [h or _("Column {n}").format(n=i + 1) for i, h in enumerate(headers)]
    rows = _FileRows(path, sep, len(headers))
    source = Source(filename, headers, rows, encoding, sep, ragged=[], path=path)
    rows.ragged = source.ragged  # filled in if the rows are ever parsed in Python
    source.settled, rows.source = settled, source
    if temporary:
        weakref.finalize(source, _unlink, path)
    return source


def _copy(data: bytes, text: str, encoding: str) -> str:
    """A temporary UTF-8 file (without a byte order mark) of the file, for DuckDB's reader.
    (DuckDB reads bytes in memory only through fsspec, which copies them too; this copy costs
    about 0.1 s a 100 MB, some 3 % of importing them.)"""
    handle, path = tempfile.mkstemp(prefix="crm-import-", suffix=".csv")
    with os.fdopen(handle, "wb") as out:
        if encoding == "utf-8":
            out.write(data)
        else:  # re-encoded (and without a byte order mark) for DuckDB's reader
            for start in range(0, len(text), 4_000_000):
                out.write(text[start:start + 4_000_000].encode("utf-8"))
    return path


def _settle(source: Source) -> bool:
    """Makes sure a file-backed Source of which only the head was read as UTF-8 is UTF-8
    throughout; if it is not, its encoding is detected as read() does and DuckDB and the row
    path get a re-encoded copy. Returns whether the file was re-encoded."""
    if source.settled:
        return False
    source.settled = True
    with open(source.path, "rb") as handle:
        data = handle.read()
    text, found = _decode(data, None)
    if found == "utf-8":
        return False
    path = _copy(data, text, found)
    source.encoding, source.path = found, path
    source.rows._path = path
    weakref.finalize(source, _unlink, path)
    return True


def _unlink(path: str) -> None:
    try:
        os.unlink(path)
    except OSError:
        pass


def _decode(data: bytes, encoding: str | None) -> tuple[str, str]:
    if encoding:
        try:
            return data.decode(encoding), encoding
        except (UnicodeDecodeError, LookupError):
            raise ImportFileError(_("The file cannot be read as {encoding}.").format(
                encoding=encoding)) from None
    for bom, name in ((b"\xef\xbb\xbf", "utf-8-sig"), (b"\xff\xfe", "utf-16"),
                      (b"\xfe\xff", "utf-16")):
        if data.startswith(bom):
            return data.decode(name), name
    try:
        return data.decode("utf-8"), "utf-8"
    except UnicodeDecodeError:
        pass
    from charset_normalizer import from_bytes

    best = from_bytes(data[:1_000_000], cp_isolation=["cp1256", "cp1252", "utf_16",
                                                      "iso8859_13", "cp1257"]).best()
    if best is None:
        raise ImportFileError(_("The file's characters cannot be read in any known encoding; "
                                "save it as UTF-8 and try again."))
    try:
        return data.decode(best.encoding), best.encoding
    except UnicodeDecodeError:
        raise ImportFileError(_("The file's characters cannot be read in any known encoding; "
                                "save it as UTF-8 and try again.")) from None


def _delimiter(text: str) -> str:
    sample = text[:64_000]
    try:
        return csv.Sniffer().sniff(sample, delimiters=",;\t|").delimiter
    except csv.Error:
        first = sample.splitlines()[0] if sample else ""
        return max(",;\t|", key=first.count)


def _read_xlsx(data: bytes, filename: str, sheet: str | None) -> Source:
    try:
        from openpyxl import load_workbook
    except ImportError:  # pragma: no cover - openpyxl is in requirements.txt
        raise ImportFileError(_("Excel files need the openpyxl package.")) from None
    try:
        book = load_workbook(io.BytesIO(data), read_only=True, data_only=True)
    except Exception:
        raise ImportFileError(_("This file cannot be opened as an Excel workbook.")) from None
    if sheet and sheet not in book.sheetnames:
        raise ImportFileError(_("The workbook has no sheet named {sheet}.").format(sheet=sheet))
    ws = book[sheet] if sheet else book.worksheets[0]
    table = [[_cell_text(c) for c in row] for row in ws.iter_rows(values_only=True)
             if any(c not in (None, "") for c in row)]
    return _source(filename, table, None, None)


def _cell_text(value) -> str:
    if value is None:
        return ""
    if isinstance(value, datetime):
        return value.isoformat(sep=" ")
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def sheets(data: bytes) -> list[str]:
    if data[:4] != b"PK\x03\x04":
        return []
    from openpyxl import load_workbook

    try:
        return load_workbook(io.BytesIO(data), read_only=True).sheetnames
    except Exception:
        raise ImportFileError(_("This file cannot be opened as an Excel workbook.")) from None


# --- mapping ---------------------------------------------------------------------------------

# Column names of spreadsheets and other CRMs' exports, by our field name.
SYNONYMS = {
    "first_name": ("first name", "firstname", "given name", "forename", "first"),
    "last_name": ("last name", "lastname", "surname", "family name", "last"),
    "email": ("e-mail", "e-mail address", "email address", "mail", "e mail"),
    "phone": ("phone number", "telephone", "tel", "business phone", "work phone"),
    "mobile": ("mobile phone", "cell", "cell phone", "mobile number"),
    "company": ("company name", "organization", "organisation", "organization name",
                "account name", "employer"),
    "kind": ("type", "customer type", "account type"),
    "first_purchase_date": ("customer since", "first purchase", "first order"),
    "title": ("job title", "position", "role", "deal name", "opportunity name", "deal title",
              "opportunity id", "opportunity_id",
              "opportunity"),
    "name": ("account name", "company name", "customer name", "organization", "customer"),
    "source": ("lead source", "origin", "channel"),
    "status": ("lead status",),
    "owner_id": ("owner", "deal owner", "lead owner", "account owner", "sales agent",
                 "sales_agent", "assigned to", "salesperson", "rep", "sales rep"),
    "stage_id": ("deal stage", "stage", "dealstage", "pipeline stage", "deal_stage"),
    "expected_close_date": ("close date", "closing date", "expected close", "close_date",
                            "expected close date", "closedate"),
    "amount": ("amount", "deal value", "value", "close_value", "deal amount", "revenue"),
    "customer_id": ("account", "company", "customer", "organization", "account name"),
    "estimated_value": ("estimated value", "value", "potential value", "lead value"),
    "city": ("town",), "country": ("nation",),
    "notes": ("note", "description", "comments", "comment", "remarks"),
    "occurred_at": ("date", "activity date", "occurred at", "occurred_at", "date time"),
    "due_at": ("due date", "due", "deadline", "due_date"),
    "lead_id": ("lead", "lead name"),
    "contact_id": ("contact", "contact name", "contact person"),
    "deal_id": ("deal",),
    "subject": ("activity", "summary"),
    "created_at": ("engage date", "engage_date", "created date", "create date", "created",
                   "engaged", "engaged on", "created on", "date created", "created_at"),
    "closed_on": ("closed on", "closed_on", "closed date", "date closed", "won date",
                  "lost date"),
    "product_lines": ("product", "products", "line items", "items", "product lines"),
}
# synonyms that hold for one entity only (a "product" column names a customer nowhere)
ENTITY_SYNONYMS = {"products": {
    "name": ("product", "product name", "item", "item name", "article"),
    "code": ("sku", "product code", "item code", "article number", "part number", "product id"),
    "unit_price": ("price", "list price", "sales price", "sales_price", "unit price"),
    "category": ("series", "product family", "family", "product line", "group"),
}, "users": {
    "username": ("user name", "login", "user id", "userid", "account"),
    "name": ("full name", "display name", "user", "employee", "person"),
    "role": ("user role", "access", "profile", "permission"),
}}

# issue 10, customer service: surveys and complaints
SYNONYMS.update({
    "answered_on": ("date", "answered", "answer date", "survey date", "response date",
                    "responded on", "submitted", "submitted at"),
    "csat": ("csat", "csat score", "satisfaction", "satisfaction score"),
    "nps": ("nps", "nps score", "recommend", "likelihood to recommend", "net promoter score"),
    "opened_on": ("opened", "date opened", "opened date", "reported", "reported on", "date"),
    "resolved_on": ("resolved", "date resolved", "resolved date", "closed", "closed date"),
    "severity": ("priority", "impact"),
    "category": ("type", "complaint type", "issue type"),
    "product_id": ("product", "product name", "item"),
})

# market audit (issue 11): the column names of price lists and competitor sheets
ENTITY_SYNONYMS.update({"price_records": {
    "product_id": ("product", "our product", "product name", "item", "sku", "product code"),
    "competitor_id": ("competitor", "rival", "vendor", "supplier", "competitor name"),
    "competitor_product": ("competitor product", "their product", "equivalent", "model"),
    "price": ("observed price", "price seen", "amount", "unit price"),
    "observed_on": ("date", "observed", "date observed", "seen on", "observation date"),
}, "competitors": {
    "name": ("competitor", "company", "rival", "competitor name"),
    "key_people": ("managers", "people", "key persons", "management"),
    "threat_level": ("threat", "risk"),
}, "customer_returns": {
    "occurred_on": ("date", "returned on", "cancelled on", "return date"),
    "kind": ("type",),
}})


def _norm(text: str) -> str:
    return re.sub(r"[^0-9a-z\u0600-\u06ff\u0100-\u017f]+", " ", str(text).lower()).strip()


def importable(entity: records.Entity) -> list[Field]:
    return [f for f in entity.fields if f.editable]


def mapping_fields(entity: records.Entity) -> list[Field]:
    """What a column can be mapped to: the importable fields, then the importer's own."""
    return importable(entity) + list(PSEUDO.get(entity.table, {}).values())


def propose_mapping(entity: records.Entity, headers: list[str]) -> dict[str, str | None]:
    """{column: field name or None}: by field name, English or translated label, then
    synonyms of other CRMs' exports; each field is used once."""
    specs = mapping_fields(entity)
    own = ENTITY_SYNONYMS.get(entity.table, {})
    names = {}
    for f in specs:  # the entity's own synonyms win over the general ones
        for label in (f.name, f.label, f.shown_label, *own.get(f.name, ())):
            names.setdefault(_norm(label), f.name)
    for f in specs:
        for label in SYNONYMS.get(f.name, ()):
            names.setdefault(_norm(label), f.name)
    out, used = {}, set()
    for header in headers:
        found = names.get(_norm(header))
        if found in used:
            found = None
        out[header] = found
        if found:
            used.add(found)
    return out


# --- coercion --------------------------------------------------------------------------------

@dataclass
class Column:
    """One mapped column, coerced: a value per row (None when missing) and per-row errors."""
    spec: Field
    values: list
    errors: dict[int, str] = field(default_factory=dict)  # row index -> message
    note: str | None = None  # e.g. how dates were read


def _missing(text) -> bool:
    return text is None or str(text).strip().lower() in MISSING


def coerce(spec: Field, texts: list[str]) -> Column:
    if spec.type in ("date", "datetime"):
        return _dates(spec, texts)
    column = Column(spec, [None] * len(texts))
    for i, text in enumerate(texts):
        if _missing(text):
            continue
        try:
            column.values[i] = _one(spec, str(text).strip())
        except ValueError as exc:
            column.errors[i] = str(exc)
    return column


def _one(spec: Field, text: str):
    t = spec.type
    if t in ("money", "number", "integer"):
        return number(text, spec)
    if t == "bool":
        low = text.lower()
        if low in TRUE:
            return True
        if low in FALSE:
            return False
        raise ValueError(_("{label}: {value} is not yes or no").format(
            label=spec.shown_label, value=repr(text)))
    if t == "choice":
        return choice(spec, text)
    return text


_CURRENCY = re.compile(r"[^\d.,\-+\u066b\u066c'’ \u00a0]")


def number(text: str, spec: Field | None = None) -> Decimal:
    """1,234.56 · 1.234,56 · 1 234,56 € · $1,234 · ۱٬۲۳۴٫۵ · -5 → a Decimal."""
    raw = i18n.latin_digits(text.strip())
    raw = raw.replace("\u066b", ".").replace("\u066c", ",")
    negative = raw.startswith("(") and raw.endswith(")")
    cleaned = _CURRENCY.sub("", raw).replace("\u00a0", " ").replace("'", "").replace("’", "")
    cleaned = cleaned.replace(" ", "")
    if "," in cleaned and "." in cleaned:
        decimal_sep = "," if cleaned.rfind(",") > cleaned.rfind(".") else "."
    elif "," in cleaned:
        decimal_sep = "." if re.fullmatch(r"[+-]?\d{1,3}(,\d{3})+", cleaned) else ","
    else:
        decimal_sep = "."
    thousands = "," if decimal_sep == "." else "."
    cleaned = cleaned.replace(thousands, "").replace(decimal_sep, ".")
    try:
        value = Decimal(cleaned)
    except InvalidOperation:
        label = spec.shown_label if spec else _("Value")
        raise ValueError(_("{label}: {value} is not a number").format(
            label=label, value=repr(text))) from None
    return -value if negative else value


def choice(spec: Field, text: str) -> str:
    low = _norm(text)
    for code in spec.choices:
        if low in (_norm(code), _norm(spec.choice_label(code, translate=False)),
                   _norm(spec.choice_label(code))):
            return code
    close = difflib.get_close_matches(low, [_norm(spec.choice_label(c)) for c in spec.choices],
                                      n=1, cutoff=0.6)
    hint = ""
    if close:
        hint = " " + _("Did you mean {suggestion}?").format(suggestion=close[0])
    raise ValueError(_("{label}: {value} is not one of the choices.").format(
        label=spec.shown_label, value=repr(text)) + hint)


_DMY = re.compile(r"^\s*(\d{1,4})[./\-](\d{1,2})[./\-](\d{1,4})(?:[ T](\d{1,2}):(\d{2})"
                  r"(?::(\d{2}))?)?\s*$")


def _dates(spec: Field, texts: list[str]) -> Column:
    """Dates in ISO, dd.mm.yyyy, dd-mm-yyyy or mm/dd/yyyy (and Jalali years 13xx-14xx). Whether
    a/b/yyyy is day/month or month/day is decided from the whole column."""
    column = Column(spec, [None] * len(texts))
    parts = {}
    for i, text in enumerate(texts):
        if _missing(text):
            continue
        found = _DMY.match(i18n.latin_digits(str(text)))
        if not found:
            try:
                column.values[i] = datetime.fromisoformat(str(text).strip())
            except ValueError:
                column.errors[i] = _("{label}: {value} is not a date").format(
                    label=spec.shown_label, value=repr(text))
            continue
        parts[i] = found.groups()
    # a/b/yyyy: day first if some first part exceeds 12; month first if some second part does;
    # otherwise by the separator's custom (slash: US month/day; dot and dash: day/month)
    short = [(int(p[0]), int(p[1])) for p in parts.values() if len(p[0]) <= 2]
    if any(a > 12 for a, _b in short):
        day_first = True
    elif any(b > 12 for _a, b in short):
        day_first = False
    else:
        day_first = not any("/" in str(texts[i]) for i, p in parts.items() if len(p[0]) <= 2)
    if short:
        column.note = (_("{label}: dates read as day/month/year") if day_first
                       else _("{label}: dates read as month/day/year")).format(
            label=spec.shown_label)
    for i, (a, b, c, hh, mm, ss) in parts.items():
        try:
            if len(a) >= 3:  # year first
                year, month, day = int(a), int(b), int(c)
            else:
                year = int(c)
                day, month = (int(a), int(b)) if day_first else (int(b), int(a))
            if 1200 <= year < 1500:  # a Persian (Jalali) year
                moment = i18n.from_jalali(year, month, day)
            else:
                moment = date(year, month, day)
            if spec.type == "datetime":
                moment = datetime(moment.year, moment.month, moment.day, int(hh or 9),
                                  int(mm or 0), int(ss or 0))
            column.values[i] = moment
        except ValueError:
            column.errors[i] = _("{label}: {value} is not a date").format(
                label=spec.shown_label, value=repr(texts[i]))
    return column


# --- references ------------------------------------------------------------------------------

def _lookup(db: Database, sql: str, params: dict | None = None) -> dict[str, int]:
    return {str(r["k"]).strip().lower(): r["id"] for r in db.query(sql, params) if r["k"]}


def _resolver(db: Database, user: User, spec: Field, pipeline_id: int | None):
    """{lower name: id} for a user or reference field, the way people name them."""
    found = {}
    for sql, params in _resolver_sql(db, user, spec, pipeline_id):
        found.update(_lookup(db, sql, params))
    return found


def _resolver_sql(db: Database, user: User, spec: Field, pipeline_id: int | None):
    """The queries (SELECT id, k) whose rows _resolver maps, later ones winning."""
    if spec.type == "user":
        return [(f"SELECT id, {column} AS k FROM users WHERE active", {})
                for column in ("name", "email", "username")]
    if spec.ref == "stages":
        from crm import pipelines

        pid = pipeline_id or pipelines.default_pipeline_id(db)
        return [("SELECT id, name AS k FROM stages WHERE pipeline_id = $p"
                 " AND deleted_at IS NULL", {"p": pid})]
    if spec.ref in records.REF_LABELS:
        table = spec.ref
        from crm import customers, deals, leads, products, service

        entity = {"customers": customers.CUSTOMERS, "contacts": customers.CONTACTS,
                  "deals": deals.DEALS, "leads": leads.LEADS,
                  "complaints": service.COMPLAINTS, "products": products.PRODUCTS}.get(table)
        if entity is None:
            return [(f"SELECT id, {records.REF_LABELS[table].format(a='t')} AS k"
                     f" FROM {table} t", {})]
        where, params = records.visible(entity, user)
        found = [(f"SELECT t.id, {entity.title_sql} AS k FROM {table} t WHERE {where}",
                  params)]
        if table == "contacts":
            found.append((f"SELECT t.id, t.email AS k FROM contacts t WHERE {where}", params))
        return found
    return []


def _suggest(db: Database, user: User, spec: Field, pipeline_id: int | None, key: str,
             known) -> list[str]:
    """closest(key, known): over many names, through a SQL shortlist (crm/importer_near.py)."""
    if len(known) < importer_near.SHORTLIST_AT or spec.ref == "stages":
        return closest(key, known)
    return importer_near.suggest(db, _resolver_sql(db, user, spec, pipeline_id), key)


def resolve(db: Database, user: User, spec: Field, texts: list[str],
            pipeline_id: int | None = None, create_missing: bool = False,
            created: dict | None = None, known=None) -> Column:
    """Names to ids; an unknown name is an error with the nearest known names, or (stages,
    with create_missing) a stage to add to the pipeline. known: the names' map when given
    (importer_near.Names: a few texts among many records)."""
    if known is None:
        known = _resolver(db, user, spec, pipeline_id)
    column = Column(spec, [None] * len(texts))
    for i, text in enumerate(texts):
        if _missing(text):
            continue
        key = str(text).strip().lower()
        if key.isdecimal() and spec.type == "ref" and int(key) in known.values():
            column.values[i] = int(key)
        elif key in known:
            column.values[i] = known[key]
        elif create_missing and spec.ref == "stages":
            column.values[i] = ("new stage", str(text).strip())
            if created is not None:
                created.setdefault("stages", set()).add(str(text).strip())
        else:
            close = _suggest(db, user, spec, pipeline_id, key, known)
            message = _("{label}: no {value} here.").format(label=spec.shown_label,
                                                           value=repr(str(text).strip()))
            if close:
                message += " " + _("Did you mean {suggestion}?").format(suggestion=close[0])
            column.errors[i] = message
    return column


def closest(word: str, possibilities, cutoff: float = 0.75) -> list[str]:
    """difflib.get_close_matches(word, possibilities, n=1, cutoff), the same answer, without
    the full (slow) ratio of every candidate: only of those whose quick upper bound can still
    beat the best found (a near miss among 200,000 customers: 1 s, not 20)."""
    s = difflib.SequenceMatcher()
    s.set_seq2(word)
    bounded = []
    for x in possibilities:
        s.set_seq1(x)
        if s.real_quick_ratio() >= cutoff:
            bound = s.quick_ratio()
            if bound >= cutoff:
                bounded.append((bound, x))
    bounded.sort(reverse=True)
    best = None
    for bound, x in bounded:
        if best is not None and bound < best[0]:
            break  # ratio <= quick_ratio: none of the rest can beat it (or tie it)
        s.set_seq1(x)
        found = (s.ratio(), x)
        if found[0] >= cutoff and (best is None or found > best):
            best = found  # get_close_matches keeps the largest (ratio, word)
    return [best[1]] if best else []


_LINE = re.compile(r"^(?:(?P<before>\d+(?:[.,]\d+)?)\s*[x×*]\s+(?P<name1>.+)"
                   r"|(?P<name2>.+?)\s*(?:[x×*:]\s*(?P<after>\d+(?:[.,]\d+)?)"
                   r"|\((?P<paren>\d+(?:[.,]\d+)?)\)))$|^(?P<name3>.+)$", re.IGNORECASE)


def product_lines(db: Database, spec: Field, texts: list[str], known: dict | None = None,
                  suggest=None) -> Column:
    """Cells like "GTX Pro x 2; SKU-7" to deal lines, products found by name or code. known:
    {code or name: product} of the products the cells name where given, with suggest(key)
    the near miss of a name none has (crm/importer_pg_deals.py: not every product read)."""
    if known is None:
        known = {}
        for r in db.query("SELECT id, name, code, unit_price FROM products WHERE"
                          " deleted_at IS NULL ORDER BY active DESC, id"):
            for k in (r["code"], r["name"]):
                if k:
                    known.setdefault(str(k).strip().lower(), r)
    column = Column(spec, [None] * len(texts))
    for i, text in enumerate(texts):
        if _missing(text):
            continue
        lines, problems = [], []
        for part in re.split(r"[;|\n]", str(text)):
            part = part.strip()
            if not part:
                continue
            m = _LINE.match(part)
            name = (m.group("name1") or m.group("name2") or m.group("name3")).strip()
            amount = m.group("before") or m.group("after") or m.group("paren") or "1"
            quantity = Decimal(amount.replace(",", "."))
            product = known.get(name.lower())
            if product is None:
                message = _("no product {value}.").format(value=repr(name))
                close = suggest(name.lower()) if suggest else difflib.get_close_matches(
                    name.lower(), list(known), n=1, cutoff=0.75)
                if close:
                    message += " " + _("Did you mean {suggestion}?").format(
                        suggestion=known[close[0]]["name"])
                problems.append(message)
            elif product["unit_price"] is None:
                problems.append(_("{product} has no unit price yet.").format(
                    product=repr(product["name"])))
            elif quantity <= 0:
                problems.append(_("{product}: the quantity must be above zero.").format(
                    product=repr(product["name"])))
            else:
                lines.append({"product_id": product["id"], "description": product["name"],
                              "quantity": quantity, "unit_price": product["unit_price"]})
        if problems:
            column.errors[i] = _("{label}: {reason}").format(label=spec.shown_label,
                                                            reason=" ".join(problems))
        else:
            column.values[i] = lines or None
    return column


# --- planning (the dry run) ------------------------------------------------------------------

ACTIONS = {"create": N_("create"), "update": N_("update"), "skip": N_("skip"),
           "reject": N_("reject")}


@dataclass
class Row:
    line: int  # the row as a spreadsheet numbers it (the header is row 1)
    action: str  # create, update, skip, reject
    values: dict
    record_id: int | None = None
    errors: dict = field(default_factory=dict)  # field or column -> message
    changes: dict = field(default_factory=dict)  # field -> (old, new), for updates
    version: int | None = None
    cells: list | None = None  # the row as it was in the file (fast path: the file is not parsed)
    extra: dict = field(default_factory=dict)  # values of the importer's own targets (PSEUDO)


@dataclass
class Plan:
    entity: records.Entity
    source: Source
    mapping: dict
    mode: str
    key: str | None
    rows: list[Row]
    notes: list[str]
    new_stages: set = field(default_factory=set)
    pipeline_id: int | None = None
    # fast path: the staging table holding the rows to create, and counts of rows kept
    # only there (self.rows then holds the rejected rows and those the row path writes)
    staged: str | None = None
    staged_counts: dict = field(default_factory=dict)
    # a set-based dry run of updates: execute() matches the rows again (set-based, or on the
    # row path where that cannot write them) and refuses when the counts are not the dry
    # run's any more
    replan: bool = False
    # such a dry run's checked rows, kept staged under this name: execute() matches them
    # again against the records and writes them set-based (crm/importer_updates.py)
    staged_updates: str | None = None

    def count(self, action: str) -> int:
        return (sum(1 for r in self.rows if r.action == action)
                + self.staged_counts.get(action, 0))

    @property
    def counts(self) -> dict[str, int]:
        return {a: self.count(a) for a in ACTIONS}


def plan(db: Database, user: User, entity: records.Entity, source: Source, mapping: dict,
         mode: str = "create", key: str | None = None, create_missing: bool = False,
         pipeline_id: int | None = None, fast: bool | None = None) -> Plan:
    """What the import would do, row by row; nothing is written.

    A big CSV (read into a file-backed Source) is planned set-based in SQL (_fast_plan) when
    the mapping allows it, unless fast=False; otherwise row by row, with a note why."""
    require(user, "create")
    if mode not in MODES:
        raise ValueError(f"mode must be one of {MODES}")
    if create_missing and user.role != "admin":  # as on the Pipelines & stages page
        raise ImportFileError(_("Only an admin can add stages."))
    try:
        records.require_write(user, entity, "create")
    except PermissionDenied as exc:
        raise ImportFileError(str(exc)) from None
    if entity.table == "users" and mode != "create":
        raise ImportFileError(_("An import only adds users; change users on the Users page."))
    specs = {f.name: f for f in importable(entity)}
    pseudo = PSEUDO.get(entity.table, {})
    unknown = [v for v in mapping.values() if v and v not in specs and v not in pseudo]
    if unknown:
        raise ImportFileError(_("These are not fields of {entity}: {fields}").format(
            entity=_(entity.plural), fields=", ".join(unknown)))
    if mode != "create" and not key:
        raise ImportFileError(_("Updating needs a key column mapped to a field (e.g. email)."))
    if key and (key not in specs or key not in mapping.values()):
        raise ImportFileError(_("The key {field} needs a column of the file mapped to it.")
                              .format(field=specs[key].shown_label if key in specs else key))
    notes = []
    if source.path and fast is not False:  # read_csv
        why = _fast_refusal(entity, mapping, mode, key)
        if why is None and db.dialect != dialect.DUCKDB and entity.table not in PG_TABLES \
                and not importer_pg_deals.takes(db, entity, mode):
            why = _("on PostgreSQL only leads, customers, products, contacts, tasks,"
                    " activities and new deals are checked set-based")
        if why is None and entity.table == "deals" and mode == "create":  # importer_deals
            from crm import importer_deals

            found = importer_deals.fast_plan(db, user, entity, source, mapping, key,
                                             pipeline_id, create_missing)
        elif why is None:  # (a deal update's stages to add: importer_deals.stage_map)
            found = _fast_plan(db, user, entity, source, mapping, key, mode, pipeline_id,
                               create_missing)
        if why is None:
            if isinstance(found, Plan):
                found.notes.extend(_unwritten_dates(entity, mapping, mode))
                return found
            why = found
        notes.append(_("Read row by row (slower): {reason}").format(reason=why))
    columns, created = {}, {}
    for index, header in enumerate(source.headers):
        name = mapping.get(header)
        if not name:
            continue
        spec, texts = (specs.get(name) or pseudo[name]), source.column(index)
        if name == "product_lines":
            column = product_lines(db, spec, texts)
        elif spec.type in ("user", "ref"):
            column = resolve(db, user, spec, texts, pipeline_id, create_missing, created)
        else:
            column = coerce(spec, texts)
        if column.note:
            notes.append(column.note)
        columns[name] = (header, column)
    if source.ragged:
        notes.append(_("{count} row(s) had a different number of columns than the header; "
                       "missing cells were left empty: rows {lines}").format(
            count=len(source.ragged), lines=", ".join(map(str, source.ragged[:20]))))
    existing = _existing(db, user, entity, key, [c for n, (h, c) in columns.items()
                                                 if n == key]) if mode != "create" or key else {}
    lost_stages = {r["id"] for r in db.query("SELECT id FROM stages WHERE kind = 'lost'")} \
        if entity.table == "deals" else set()
    closed_stages = {r["id"] for r in db.query("SELECT id FROM stages WHERE kind <> 'open'")} \
        if entity.table == "deals" else set()
    current_lines = _current_lines(db, existing, columns) if mode != "create" else {}
    # a deal update's close dates: written on deals it closes or that are closed (issue #8)
    last_moves = _last_moves(db, existing) if entity.table == "deals" and mode != "create" \
        and "closed_on" in columns else None
    contacts = None  # deals: {contact id: its customer}, the contact must work for it
    if entity.table == "deals" and "contact_id" in columns:
        from crm import importer_deals

        contacts = importer_deals.contact_customers(db, columns["contact_id"][1].values)
    rows, seen = [], {}
    for i in range(len(source.rows)):
        values = {name: column.values[i] for name, (header, column) in columns.items()
                  if name not in pseudo}
        extra = {name: column.values[i] for name, (header, column) in columns.items()
                 if name in pseudo and column.values[i] is not None}
        errors = {header: column.errors[i] for name, (header, column) in columns.items()
                  if i in column.errors}
        row = Row(line=i + 2, action="create", values=values, errors=errors, extra=extra)
        key_value = _key_text(values.get(key)) if key else None
        if key and key_value:
            if key_value in seen:
                row.action, row.errors = "reject", {**errors, key: _(
                    "the same {field} as row {line}").format(
                    field=specs[key].shown_label, line=seen[key_value])}
                rows.append(row)
                continue
            seen[key_value] = row.line
        match = existing.get(key_value) if key_value else None
        if match is not None:
            row.record_id, row.version = match["id"], match["version"]
            row.action = "skip" if mode == "create" else "update"
        elif mode == "update":
            row.action = "reject"
            row.errors = {**errors, key or "": _("no record with this {field}").format(
                field=specs[key].shown_label)}
        lines = extra.get("product_lines")
        new_lines = False  # an update that replaces the deal's product lines
        if lines and row.action == "update":
            old_lines = current_lines.get(row.record_id, [])
            new_lines = _line_keys(lines) != _line_keys(old_lines)
            if new_lines:
                row.extra["lines_before"] = old_lines
        if lines and row.action in ("create", "update") and values.get("amount") is None:
            values["amount"] = sum(x["quantity"] * x["unit_price"] for x in lines).quantize(
                Decimal("0.01"))
        if row.action != "reject" and not errors and row.action != "skip":
            _check(user, entity, row, specs, match, lost_stages, closed_stages, contacts)
        if last_moves is not None and row.action in ("update", "skip") and not row.errors:
            _close_date(row, match, last_moves, closed_stages, columns["closed_on"][0])
        if new_lines and not row.errors:
            from crm import deals

            row.action = "update"  # even when no field of the deal itself changes
            row.changes["product_lines"] = (deals.lines_text(row.extra["lines_before"]),
                                            deals.lines_text(lines))
        if row.errors and row.action != "skip":
            row.action = "reject"
        rows.append(row)
    _check_unique(db, entity, rows, specs)
    notes.extend(_unwritten_dates(entity, mapping, mode))
    return Plan(entity, source, mapping, mode, key, rows, notes,
                new_stages=created.get("stages", set()), pipeline_id=pipeline_id)


def _unwritten_dates(entity: records.Entity, mapping: dict, mode: str) -> list[str]:
    """The dry run's word on the dates a deal update only checks on deals already there (the
    engage date; the close date of a deal that stays open), so that none is silently
    dropped."""
    if entity.table != "deals" or mode == "create":
        return []
    found = []
    engaged = [h for h, name in mapping.items() if name == "created_at"]
    closed = [h for h, name in mapping.items() if name == "closed_on"]
    if engaged:
        found.append(_("On deals already there, {columns} is only checked, not written: an "
                       "import does not change their engage date.").format(
            columns=", ".join(f"“{c}”" for c in engaged)))
    if closed:
        found.append(_("On deals already there that stay open, {columns} is only checked, "
                       "not written; deals the import closes, or closed already, take it as "
                       "their close date.").format(columns=", ".join(f"“{c}”" for c in closed)))
    return found


def _last_moves(db: Database, existing: dict) -> dict[int, datetime]:
    """{deal id: its latest stage history moment} of the deals an update's rows name."""
    ids = sorted({r["id"] for r in existing.values()})
    found = {}
    for chunk in _chunks(ids, 1000):
        names = {f"d{i}": v for i, v in enumerate(chunk)}
        for r in db.query("SELECT deal_id, max(changed_at) AS at FROM deal_stage_history"
                          f" WHERE deal_id IN ({', '.join('$' + n for n in names)})"
                          " GROUP BY deal_id", names):
            found[r["deal_id"]] = r["at"]
    return found


def _close_date(row: Row, current: dict, last_moves: dict, closed_stages: set,
                header: str) -> None:
    """A deal update's close date from the file (issue #8): a move into a won or lost stage
    closes on it (refused before the deal's latest stage change, so that its history stays in
    order); a deal closed already that stays closed takes it as its close date."""
    closed = _day(row.extra.get("closed_on"))
    if closed is None:
        return
    stage = row.changes.get("stage_id", (None, current["stage_id"]))[1]
    if isinstance(stage, tuple) or stage not in closed_stages:
        return  # it stays (or becomes) open: only checked
    if "stage_id" in row.changes:
        last = last_moves.get(current["id"])
        if last is not None and closed < last.date():  # (its own day: just after it)
            row.errors[header] = _(
                "“{column}” is {date}, before the deal's latest stage change (on {day}): "
                "it cannot close earlier").format(column=header, date=closed.isoformat(),
                                                  day=str(last)[:10])
            row.action = "reject"
            return
    elif _day(current["closed_on"]) == closed:
        return
    row.changes["closed_on"] = (current["closed_on"], closed)
    row.action = "update"


def _current_lines(db: Database, existing: dict, columns: dict) -> dict[int, list[dict]]:
    """The product lines of the deals an update's rows name, when the file has lines."""
    if "product_lines" not in columns or not existing:
        return {}
    from crm import deals

    cur = db.cursor()
    try:
        return deals.lines_of(cur, sorted({r["id"] for r in existing.values()}))
    finally:
        cur.close()


def _line_keys(lines: list[dict]) -> list[tuple]:
    """Product lines in a form to compare: the same products, quantities and prices."""
    return [(x.get("product_id"), x["description"], Decimal(str(x["quantity"])).normalize(),
             Decimal(str(x["unit_price"])).quantize(Decimal("0.01"))) for x in lines]


def _check_unique(db: Database, entity: records.Entity, rows: list, specs: dict) -> None:
    """Rejects rows whose unique field (a product's code) repeats an earlier row's or belongs
    to another live record."""
    for name in entity.unique:
        wanted = {_key_text(r.values.get(name)) for r in rows if r.action in ("create", "update")}
        wanted.discard(None)
        if not wanted:
            continue
        taken = {}
        for chunk in _chunks(sorted(wanted), 1000):
            names = {f"k{i}": v for i, v in enumerate(chunk)}
            for r in db.query(f"SELECT id, lower({name}) AS v FROM {entity.table}"
                              f" WHERE deleted_at IS NULL AND lower({name}) IN"
                              f" ({', '.join('$' + n for n in names)})", names):
                taken.setdefault(r["v"], r["id"])
        seen = {}
        for row in rows:
            value = _key_text(row.values.get(name))
            if row.action not in ("create", "update") or value is None:
                continue
            label = specs[name].shown_label
            if value in seen:
                row.errors[label] = _("the same {field} as row {line}").format(
                    field=label, line=seen[value])
            elif value in taken and taken[value] != row.record_id:
                row.errors[label] = _("{entity} #{id} already has this {field}").format(
                    entity=_(entity.label), id=taken[value], field=label)
            seen.setdefault(value, row.line)
            if row.errors:
                row.action = "reject"


def _chunks(items: list, size: int):
    for start in range(0, len(items), size):
        yield items[start:start + size]


def _key_text(value) -> str | None:
    if value is None:
        return None
    return str(value).strip().lower() or None


def _existing(db: Database, user: User, entity: records.Entity, key: str | None,
              key_columns: list) -> dict:
    """{key value: {id, version, ...current values}} of live records the user may see."""
    if not key:
        return {}
    where, params = records.visible(entity, user)
    wanted = sorted({_key_text(v) for c in key_columns for v in c.values} - {None})
    if not wanted:
        return {}
    found = {}
    for start in range(0, len(wanted), 1000):
        chunk = wanted[start:start + 1000]
        names = {f"k{i}": v for i, v in enumerate(chunk)}
        rows = db.query(
            f"SELECT t.* FROM {entity.table} t WHERE {where} AND lower(CAST(t.{key} AS VARCHAR))"
            f" IN ({', '.join('$' + n for n in names)}) ORDER BY t.id", {**params, **names})
        for r in rows:  # two records of one key: the older, as the set-based dry run takes it
            found.setdefault(_key_text(r[key]), r)
    return found


_LINK_NAMES = ("lead_id", "customer_id", "contact_id", "deal_id",
               "complaint_id")  # activities.LINKS
_LINKED = {"activities": _LINK_NAMES, "tasks": _LINK_NAMES}  # need at least one of these


def _check(user: User, entity: records.Entity, row: Row, specs: dict,
           current: dict | None, lost_stages: set = frozenset(),
           closed_stages: set = frozenset(), contacts: dict | None = None) -> None:
    """Validation as the form does it: a new row whole, an update on the fields it brings."""
    # a stage the import will add (create_missing) stands in as id 0 until it exists
    values = {k: (0 if isinstance(v, tuple) else v) for k, v in row.values.items()}
    engaged, closed = _day(row.extra.get("created_at")), _day(row.extra.get("closed_on"))
    if closed is None and values.get("stage_id") in closed_stages:  # as _deal_dates takes it
        closed = _day(values.get("expected_close_date"))
    if engaged and closed and closed < engaged:
        row.errors[_("Closed on")] = _("The close date is before the engage date")
        return
    if values.get("stage_id") in lost_stages and not values.get("lost_reason"):
        row.errors[specs["stage_id"].shown_label] = _("A lost deal needs a lost reason")
        return
    contact, customer = values.get("contact_id"), values.get("customer_id")
    if contacts is not None and contact is not None and customer is not None \
            and contacts.get(contact) != customer:  # as deals._check_links refuses it
        row.errors[specs["contact_id"].shown_label] = _("The contact works for another "
                                                        "customer")
        return
    if entity.table in _LINKED and row.action == "create" and not any(
            values.get(k) is not None for k in _LINKED[entity.table]):
        row.errors[_("Link")] = _("Link it to a lead, customer, contact or deal")
        return
    owner = values.get("owner_id")
    if owner is not None and not user.sees_all and owner != user.id:
        row.errors[specs["owner_id"].shown_label] = _("Reps can only assign records to "
                                                      "themselves")
        return
    try:
        if row.action == "create":
            clean = validate(entity.fields, values)
            problems = entity.check(clean) if entity.check else {}
            if problems:
                raise ValidationError(problems)
        else:
            clean = validate(entity.fields, values, partial=True)
            row.changes = {k: (current.get(k), v) for k, v in clean.items()
                           if records._differs(current.get(k), v)}
            for k in kept_on_update(entity):  # the write would keep them: no promise of it
                if k in row.changes:
                    row.errors[specs[k].shown_label] = _(
                        "cannot be changed by an update (it is set when the record is created)")
            if not row.changes:
                row.action = "skip"
    except ValidationError as exc:
        row.errors.update({specs[k].shown_label if k in specs else k: v
                           for k, v in exc.errors.items()})


def kept_on_update(entity: records.Entity) -> list[str]:
    """Fields an update keeps as they are (records.update_in and update_many drop them: set
    once, changed only by their own commands, e.g. a contact's customer); a deal's stage is
    not one of them (the import moves the deal)."""
    return [f.name for f in entity.fields if (f.create_only or f.name == entity.parent)
            and not (entity.table == "deals" and f.name == "stage_id")]


# --- writing ---------------------------------------------------------------------------------

def execute(db: Database, user: User, import_plan: Plan) -> int:
    """Writes the plan's create and update rows in one transaction (all or none); returns the
    import's id. Refusals found only now (a permission, a changed record) reject the whole
    import with the row's line. A fast plan's staged rows go in by INSERT ... SELECT."""
    p = import_plan
    require(user, "create")
    from crm import importer_updates

    if p.replan and importer_updates.writable(db, p):
        # its rows matched again against the records as they are now, set-based; refused,
        # as the row path's new plan is, when the counts are not the dry run's any more
        importer_updates.prepare(db, user, p)
    elif p.replan:  # a set-based dry run of updates: the row path writes them
        fresh = plan(db, user, p.entity, p.source, p.mapping, p.mode, p.key, fast=False,
                     pipeline_id=p.pipeline_id, create_missing=bool(p.new_stages))
        if fresh.counts != p.counts:
            raise ImportFileError(_("The records changed since the dry run; run it again."))
        # the row path's version check: an update of a record saved since the dry run
        seen = importer_updates.dry_run_versions(db, p)
        for row in fresh.rows:
            if row.action == "update" and seen.get(row.line, row.version) != row.version:
                raise ImportFileError(_("Row {line}: the record changed since the dry run; "
                                        "run it again.").format(line=row.line))
        return execute(db, user, fresh)
    rejected = [{"line": r.line, "errors": r.errors} for r in p.rows if r.action == "reject"]
    with db.transaction() as cur:
        first_audit = cur.execute("SELECT coalesce(max(id), 0) FROM audit_log").fetchone()[0]
        import_id = cur.execute(
            "INSERT INTO imports (entity, filename, mode, key_field, mapping, created_count,"
            " updated_count, skipped_count, rejected_count, rejected, created_at, created_by)"
            " VALUES ($e, $f, $m, $k, $map, $c, $u, $s, $r, $rej, $t, $by) RETURNING id",
            {"e": p.entity.table, "f": p.source.filename, "m": p.mode, "k": p.key,
             "map": json.dumps(p.mapping, ensure_ascii=False), "c": p.count("create"),
             "u": p.count("update"), "s": p.count("skip"), "r": p.count("reject"),
             "rej": json.dumps(rejected, ensure_ascii=False, default=str),
             "t": datetime.now(), "by": user.id or None}).fetchone()[0]
        stage_ids = _add_stages(cur, user, p) if p.new_stages else {}
        if p.staged:
            _fast_write(cur, user, p, import_id)
        if p.staged_updates:
            importer_updates.write_creates(cur, user, p, import_id)
        batched = _batchable(p.entity)
        if batched:
            rest = importer_updates.unstaged(p)  # the rows not staged, for the row path
            _create_many(cur, user, rest, import_id)
            if p.staged_updates:
                importer_updates.write_updates(cur, user, p, import_id)
            _update_many(cur, user, rest, import_id)
        if p.staged_updates and not batched:  # deals: crm/importer_updates.py
            importer_updates.write_updates(cur, user, p, import_id)
        # the creates first, then the updates (as insert_many and update_many write them, and
        # the set-based write: the same audit and import record order either way)
        for row in sorted(importer_updates.unstaged(p).rows,
                          key=lambda r: (r.action != "create", r.line)):
            if row.action not in ("create", "update") or batched:
                continue
            write_row(cur, user, p, row, import_id, stage_ids)
        cur.execute("UPDATE audit_log SET import_id = $i WHERE id > $first"
                    " AND import_id IS NULL", {"i": import_id, "first": first_audit})
        # the records it created: their audit rows name the import, as the set-based path
        # writes them (the values are the records' first version)
        cur.execute("UPDATE audit_log SET changes = NULL WHERE id > $first AND import_id = $i"
                    " AND action = 'create' AND entity = $t AND changes IS NOT NULL"
                    " AND record_id IN (SELECT record_id FROM import_records"
                    " WHERE import_id = $i AND action = 'create')",
                    {"i": import_id, "first": first_audit, "t": p.entity.table})
        audit.record(cur, user, "imports", import_id, "import",
                     {"rows": [None, p.count("create") + p.count("update")]})
        if os.environ.get("CRM_IMPORT_TEST_PAUSE"):  # tests: a kill -9 before the commit
            print("import: writing", flush=True)
            time.sleep(float(os.environ["CRM_IMPORT_TEST_PAUSE"]))
    discard(db, p)
    return import_id


def write_row(cur, user: User, p: Plan, row: Row, import_id: int, stage_ids: dict) -> None:
    """One row of the plan by the entity's own command, with its import_records row; a
    refusal refuses the import with the row's line."""
    values = {k: (stage_ids[v[1]] if isinstance(v, tuple) else v)
              for k, v in row.values.items()}
    try:
        if row.action == "create":
            record_id = _insert(cur, user, p.entity, values)
            if p.entity.table == "deals":
                _deal_dates(cur, record_id, values, row.extra)
                if row.extra.get("product_lines"):
                    from crm import deals

                    deals.insert_lines(cur, user, record_id, row.extra["product_lines"])
            before = None
        else:
            # (a deal's close date is not a field: written by the move, or on its own below)
            changed = {k: values[k] for k in row.changes
                       if k not in ("product_lines", "closed_on")}
            before = {k: old for k, (old, _new) in row.changes.items()}
            version = row.version
            closed = row.changes.get("closed_on", (None, None))[1]
            if "stage_id" in changed and p.entity.table == "deals":
                _move_deal(cur, user, row.record_id, changed, before, version, closed)
                version = None  # checked by the move, which made a new one
                closed = None
            if changed and p.entity.update_in:  # the entity's own rules (links, dates)
                was = records.fetch(cur, p.entity, row.record_id)
                saved = p.entity.update_in(cur, user, row.record_id, changed, version)
                for f in p.entity.editable:  # what the command set beside (a resolved date)
                    if f.name not in before and was is not None \
                            and records._differs(was[f.name], saved[f.name]):
                        before[f.name] = was[f.name]  # for the undo
            elif changed:
                records.update_in(cur, user, p.entity, row.record_id, changed, version)
            if "product_lines" in row.changes:  # deals: the file's lines replace theirs
                from crm import deals

                deals.replace_lines(cur, user, row.record_id,
                                    row.extra["product_lines"],
                                    None if changed else row.version)
                before["product_lines"] = _plain_lines(row.extra["lines_before"])
            if closed is not None:  # a deal closed already, closed on the file's day
                _set_closed_on(cur, user, row.record_id, closed,
                               None if changed or "product_lines" in row.changes
                               else row.version)
            record_id = row.record_id
    except ValidationError as exc:
        raise ImportFileError(_("Row {line}: {reason}").format(
            line=row.line, reason="; ".join(exc.errors.values()))) from None
    except PermissionDenied as exc:
        raise ImportFileError(_("Row {line}: {reason}").format(
            line=row.line, reason=exc)) from None
    except (records.ConflictError, records.NotFound):
        raise ImportFileError(_("Row {line}: the record changed since the dry run; "
                                "run it again.").format(line=row.line)) from None
    version = cur.execute(f"SELECT version FROM {p.entity.table} WHERE id = $id",
                          {"id": record_id}).fetchone()[0]
    cur.execute(
        "INSERT INTO import_records (import_id, line, record_id, action, before,"
        " version_after) VALUES ($i, $l, $r, $a, $b, $v)",
        {"i": import_id, "l": row.line, "r": record_id, "a": row.action,
         "b": None if before is None else audit._payload(
             {k: (v, None) for k, v in before.items()}),
         "v": version})


# what a stage move sets besides the stage, kept for the import's undo
_MOVED = ("lost_reason", "lost_to_competitor", "closed_on", "probability", "forecast_category")


def _move_deal(cur, user: User, deal_id: int, changed: dict, before: dict,
               version: int | None, closed_on: date | None = None) -> None:
    """A deal update's new stage, moved as the board moves it (stage history, close date,
    lost reason); takes stage_id out of changed and adds what the move changed to before,
    the rest of changed being written after it (the file's probability over the stage's)."""
    from crm import deals

    current = records.fetch(cur, deals.DEALS, deal_id)
    if current is None:
        raise records.NotFound(deal_id)
    deals.move_deal_in(cur, user, deal_id, changed.pop("stage_id"),
                       changed.get("lost_reason", current["lost_reason"]),
                       changed.get("lost_to_competitor", current["lost_to_competitor"]),
                       version, closed_on=closed_on)
    for name in _MOVED:
        before.setdefault(name, current[name])


def _unmove_deal(cur, user: User, deal_id: int, old: dict, version: int) -> None:
    """Undo of _move_deal: the deal moved back to its old stage (a new history row), the old
    lost reason given where that stage is a lost one; old keeps the fields to restore."""
    from crm import deals

    closed_on = old.pop("closed_on", False)
    moved = deals.move_deal_in(cur, user, deal_id, old.pop("stage_id"),
                               old.get("lost_reason"), old.get("lost_to_competitor"), version)
    if closed_on is not False and str(moved["closed_on"] or "") != str(closed_on or ""):
        cur.execute("UPDATE deals SET closed_on = $c WHERE id = $id",
                    {"c": closed_on, "id": deal_id})  # the day it closed, not the undo's
        audit.record(cur, user, "deals", deal_id, "update",
                     {"closed_on": (moved["closed_on"], closed_on)})


def _set_closed_on(cur, user: User, deal_id: int, closed_on, version: int | None) -> None:
    """A closed deal's close date (an update file's, or its undo's), audited: not a form
    field, so records.update_in does not write it."""
    from crm import deals

    deal = records.fetch(cur, deals.DEALS, deal_id)
    if deal is None or deal["deleted_at"] is not None:
        raise records.NotFound(deal_id)
    require(user, "edit", deal)
    if version is not None and deal["version"] != version:
        raise records.ConflictError(deal, [])
    cur.execute("UPDATE deals SET closed_on = $c, version = version + 1, updated_at = $now,"
                " updated_by = $by WHERE id = $id",
                {"c": closed_on, "now": datetime.now(), "by": user.id or None, "id": deal_id})
    audit.record(cur, user, "deals", deal_id, "update",
                 {"closed_on": (deal["closed_on"], closed_on)})


def _plain_lines(lines: list[dict]) -> list[dict]:
    """Product lines as JSON can hold them (for undo)."""
    return [{"product_id": x.get("product_id"), "description": x["description"],
             "quantity": str(x["quantity"]), "unit_price": str(x["unit_price"])} for x in lines]


def _batchable(entity: records.Entity) -> bool:
    """Whether new records go in through records.insert_many: entities without a create
    command of their own (those do more per record than the generic insert)."""
    return entity.creator is None and entity.insert_in is None


def _create_many(cur, user: User, p: Plan, import_id: int) -> None:
    """The plan's rows to create, in one insert_many and one import_records insert."""
    rows = [r for r in p.rows if r.action == "create"]
    if not rows:
        return
    try:
        ids = records.insert_many(cur, user, p.entity, [r.values for r in rows])
    except records.RowError as exc:
        raise _row_refused(exc, rows) from None
    except PermissionDenied as exc:
        raise ImportFileError(str(exc)) from None
    _record_rows(cur, import_id, "create", pd.DataFrame({
        "line": [r.line for r in rows], "record_id": ids, "before": None, "version_after": 1}))


def _row_refused(exc: records.RowError, rows: list) -> ImportFileError:
    error, line = exc.error, rows[exc.index].line
    if isinstance(error, (records.ConflictError, records.NotFound)):
        return ImportFileError(_("Row {line}: the record changed since the dry run; run it "
                                 "again.").format(line=line))
    reason = ("; ".join(error.errors.values()) if isinstance(error, ValidationError)
              else str(error))
    return ImportFileError(_("Row {line}: {reason}").format(line=line, reason=reason))


def _record_rows(cur, import_id: int, action: str, frame: pd.DataFrame) -> None:
    """import_records rows (line, record_id, before, version_after) from a frame, at once."""
    cur.register("crm_import_rows", frame.astype({"before": object}))
    try:
        cur.execute("INSERT INTO import_records (import_id, line, record_id, action, before,"
                    " version_after) SELECT $i, line, record_id, $a, before, version_after"
                    " FROM crm_import_rows", {"i": import_id, "a": action})
    finally:
        cur.unregister("crm_import_rows")


def _update_many(cur, user: User, p: Plan, import_id: int) -> None:
    """The plan's updates in one records.update_many, with what each field was before (for
    undo) in import_records."""
    rows = [r for r in p.rows if r.action == "update"]
    if not rows:
        return
    try:
        done = records.update_many(cur, user, p.entity, [
            (r.record_id, {k: r.values[k] for k in r.changes}, r.version) for r in rows])
    except records.RowError as exc:
        raise _row_refused(exc, rows) from None
    _record_rows(cur, import_id, "update", pd.DataFrame({
        "line": [r.line for r in rows], "record_id": [r.record_id for r in rows],
        "before": [audit._payload({k: (old, None) for k, (old, _new) in changes.items()})
                   for changes in done],
        "version_after": [r.version + (1 if changes else 0) for r, changes in zip(rows, done)]}))


def _insert(cur, user: User, entity: records.Entity, values: dict) -> int:
    """The entity's own create command inside the import's transaction."""
    if entity.insert_in:
        return entity.insert_in(cur, user, values)
    return records.insert(cur, user, entity, values)


def _day(value) -> date | None:
    if value is None:
        return None
    return value.date() if isinstance(value, datetime) else value


def _deal_dates(cur, deal_id: int, values: dict, extra: dict) -> None:
    """An imported deal's own dates: created (and its first stage history row, and its time in
    the stage) on the engage date; a won or lost deal closed on the close date (the closed-on
    column, else the expected close date) instead of today."""
    engaged = extra.get("created_at")
    kind = cur.execute("SELECT s.kind FROM deals d JOIN stages s ON s.id = d.stage_id"
                       " WHERE d.id = $id", {"id": deal_id}).fetchone()[0]
    closed = _day(extra.get("closed_on") or values.get("expected_close_date"))
    if engaged is not None:
        moment = engaged if isinstance(engaged, datetime) else datetime.combine(engaged, dt_time())
        cur.execute("UPDATE deals SET created_at = $t, stage_entered_at = $t WHERE id = $id",
                    {"t": moment, "id": deal_id})
        cur.execute("UPDATE deal_stage_history SET changed_at = $t WHERE deal_id = $id",
                    {"t": moment, "id": deal_id})
        stage_spans.refresh_deal(cur, deal_id)
    if kind != "open" and closed is not None:
        cur.execute("UPDATE deals SET closed_on = $d WHERE id = $id", {"d": closed, "id": deal_id})


def _add_stages(cur, user: User, p: Plan) -> dict[str, int]:
    """Stages the file names that the pipeline lacks (--create-missing): open stages before
    the closing ones, at 50 %."""
    pid = p.pipeline_id or cur.execute(
        "SELECT id FROM pipelines WHERE is_default AND deleted_at IS NULL").fetchone()[0]
    made = {}
    for name in sorted(p.new_stages):
        position = cur.execute("SELECT coalesce(min(position), 0) FROM stages WHERE"
                               " pipeline_id = $p AND kind <> 'open' AND deleted_at IS NULL",
                               {"p": pid}).fetchone()[0]
        cur.execute("UPDATE stages SET position = position + 1 WHERE pipeline_id = $p"
                    " AND position >= $pos", {"p": pid, "pos": position})
        made[name] = cur.execute(
            "INSERT INTO stages (pipeline_id, name, position, probability, rotting_days, kind,"
            " forecast_category, created_at) VALUES ($p, $n, $pos, 50, 14, 'open', 'pipeline',"
            " $t) RETURNING id", {"p": pid, "n": name, "pos": position, "t": datetime.now()}
        ).fetchone()[0]
        audit.record(cur, user, "stages", made[name], "create", {"name": [None, name]})
    return made


# --- saved mappings --------------------------------------------------------------------------

def _entity_of(entity) -> records.Entity:
    """An entity given as itself or by its table name."""
    if isinstance(entity, records.Entity):
        return entity
    found = {e.table: e for e in entities()}.get(entity)
    if found is None:
        raise ValueError(f"no importable entity {entity!r}")
    return found


def entities() -> list[records.Entity]:
    """What can be imported."""
    from crm import activities, customers, deals, leads, market, products, service, team

    return [leads.LEADS, customers.CUSTOMERS, customers.CONTACTS, deals.DEALS,
            activities.ACTIVITIES, activities.TASKS, products.PRODUCTS, team.USERS,
            service.SURVEYS, service.COMPLAINTS, market.COMPETITORS, market.PRICE_RECORDS,
            market.RETURNS]


def targets(entity: records.Entity) -> list[str]:
    """The names a column can be mapped to: the importable fields and the importer's own
    pseudo-fields of the entity."""
    return [f.name for f in mapping_fields(entity)]


def save_mapping(db: Database, user: User, entity, name: str, mapping: dict) -> int:
    """Stores a column mapping {column: field or None} under a name for the entity; a mapping
    of the same name (any case) is replaced. Returns its id."""
    require(user, "create")
    entity = _entity_of(entity)
    name = (name or "").strip()
    if not name:
        raise ValidationError({"name": _("Give the mapping a name.")})
    known = set(targets(entity))
    unknown = sorted({str(v) for v in mapping.values() if v and v not in known})
    if unknown:
        raise ValidationError({"mapping": _("These are not fields of {entity}: {fields}").format(
            entity=_(entity.plural), fields=", ".join(unknown))})
    text = json.dumps({str(k): (v or None) for k, v in mapping.items()}, ensure_ascii=False)
    with db.transaction() as cur:
        found = cur.execute("SELECT id, created_by, mapping FROM import_mappings WHERE"
                            " entity = $e AND lower(name) = lower($n) ORDER BY id LIMIT 1",
                            {"e": entity.table, "n": name}).fetchone()
        if found is None:
            mapping_id = cur.execute(
                "INSERT INTO import_mappings (entity, name, mapping, created_at, created_by)"
                " VALUES ($e, $n, $m, $t, $by) RETURNING id",
                {"e": entity.table, "n": name, "m": text, "t": datetime.now(),
                 "by": user.id or None}).fetchone()[0]
            audit.record(cur, user, "import_mappings", mapping_id, "create",
                         {"name": [None, name], "mapping": [None, text]})
            return mapping_id
        mapping_id, owner, old = found
        require(user, "edit", {"owner_id": owner})
        cur.execute("UPDATE import_mappings SET name = $n, mapping = $m WHERE id = $id",
                    {"n": name, "m": text, "id": mapping_id})
        audit.record(cur, user, "import_mappings", mapping_id, "update",
                     {"mapping": [old, text]})
        return mapping_id


def mappings(db: Database, user: User, entity) -> list[dict]:
    """The saved mappings of the entity, by name: [{id, name, mapping}]."""
    require(user, "view")
    entity = _entity_of(entity)
    rows = db.query("SELECT id, name, mapping FROM import_mappings WHERE entity = $e"
                    " ORDER BY lower(name), id", {"e": entity.table})
    return [{"id": r["id"], "name": r["name"], "mapping": json.loads(r["mapping"])}
            for r in rows]


def find_mapping(db: Database, user: User, entity, name: str) -> dict | None:
    """The saved mapping of that name (any case), or None."""
    wanted = (name or "").strip().lower()
    return next((m for m in mappings(db, user, entity) if m["name"].lower() == wanted), None)


# --- history and undo ------------------------------------------------------------------------

def history(db: Database, user: User, limit: int = 100) -> list[dict]:
    """The imports the user may see (their own; managers and admins: all), newest first."""
    require(user, "view")
    mine = "" if user.sees_all else " WHERE i.created_by = $me"
    return db.query(
        "SELECT i.id, i.entity, i.filename, i.mode, i.created_count, i.updated_count,"
        " i.skipped_count, i.rejected_count, i.rejected, i.mapping, i.created_at,"
        " i.undone_at, u.name AS by_name FROM imports i LEFT JOIN users u"
        f" ON u.id = i.created_by{mine} ORDER BY i.id DESC LIMIT $n",
        {"n": limit, **({} if user.sees_all else {"me": user.id})})


def undo(db: Database, user: User, import_id: int) -> dict:
    """Created records go to the trash, updated ones get their old values back; a record
    changed since the import is left as it is and reported. Returns {undone, refused}."""
    by_table = {e.table: e for e in entities()}
    with db.transaction() as cur:
        found = cur.execute("SELECT entity, created_by, undone_at FROM imports WHERE id = $i",
                            {"i": import_id}).fetchone()
        if found is None:
            raise records.NotFound(_("Import #{id} does not exist").format(id=import_id))
        table, owner, undone_at = found
        require(user, "edit", {"owner_id": owner})
        if undone_at is not None:
            raise ValidationError({"import": _("This import was undone already.")})
        entity = by_table[table]
        # created records, set-based (a big import made a million): to the trash unless
        # changed or trashed since; one audit entry each
        # each run of ids a row each, joined by id (a range join over many short runs, an
        # upsert's new records between its updates, took minutes: 100,000 runs 245 s)
        runs = ("(SELECT r.record_id + g.k AS id, r.version_after FROM import_records r"
                " CROSS JOIN LATERAL generate_series(0, r.span - 1) AS g(k)"
                " WHERE r.import_id = $i AND r.action = 'create') r")
        unchanged = (f"{table}.id = r.id AND {table}.version = r.version_after"
                     f" AND {table}.deleted_at IS NULL")
        done = cur.execute(f"SELECT count(*) FROM {table}, {runs} WHERE {unchanged}",
                           {"i": import_id}).fetchone()[0]
        refused = [((n, line), {"line": line, "record_id": record_id,
                                "reason": _("changed since the import")})
                   for n, line, record_id in cur.execute(
                       "SELECT r.id, r.line + g.k, r.record_id + g.k FROM import_records r"
                       " CROSS JOIN LATERAL generate_series(0, r.span - 1) AS g(k)"
                       f" LEFT JOIN {table} t ON t.id = r.record_id + g.k WHERE r.import_id = $i"
                       " AND r.action = 'create' AND (t.id IS NULL OR t.version IS DISTINCT FROM"
                       " r.version_after OR t.deleted_at IS NOT NULL)", {"i": import_id}
                   ).fetchall()]
        if done:
            audit.record_many(cur, user, table, f"SELECT {table}.id FROM {table},"
                              f" {runs} WHERE {unchanged}", {"i": import_id},
                              "delete", {"import_undone": [None, import_id]})
            cur.execute(f"UPDATE {table} SET deleted_at = $t, deleted_by = $by,"
                        " version = version + 1"
                        + (", active = FALSE" if table == "users" else "")  # no sign-in
                        + f" FROM {runs} WHERE {unchanged}",
                        {"t": datetime.now(), "by": user.id or None, "i": import_id})
            if table == "deals":  # trashed: out of the kept stage counts
                from crm import stage_reach

                stage_reach.refresh(cur, f"SELECT r.id FROM {runs}", {"i": import_id})
        from crm import importer_updates

        # updated records set-based where the row path would do nothing more (DuckDB, no
        # rules watching, plain fields, nothing it would refuse): None sends them row by row
        found = importer_updates.undo_updates(cur, user, entity, import_id, refused)
        items = [] if found is not None else cur.execute(
            "SELECT id, record_id, line, before, version_after FROM import_records"
            " WHERE import_id = $i AND action <> 'create' ORDER BY id DESC",
            {"i": import_id}).fetchall()
        done += found or 0
        for n, record_id, line, before, version_after in items:
            current = cur.execute(f"SELECT version, deleted_at FROM {table} WHERE id = $id",
                                  {"id": record_id}).fetchone()
            if current is None or current[0] != version_after or current[1] is not None:
                refused.append(((n, line), {"line": line, "record_id": record_id,
                                            "reason": _("changed since the import")}))
                continue
            # an update: the fields (and a deal's product lines) as they were
            old = {k: v[0] for k, v in json.loads(before or "{}").items()}  # {}: none changed
            why = _undo_refusal(cur, user, entity, record_id, old)
            if why:  # (checked before any write: a deal's move back would write first)
                refused.append(((n, line), {"line": line, "record_id": record_id,
                                            "reason": why}))
                continue
            lines = old.pop("product_lines", None) if "product_lines" in old else False
            # a closed deal's close date the file changed (a move's: _unmove_deal)
            closed = old.pop("closed_on", False) if table == "deals" \
                and "stage_id" not in old else False
            version = version_after
            if "stage_id" in old and table == "deals":
                _unmove_deal(cur, user, record_id, old, version)
                version = None
            if old:
                records.update_in(cur, user, entity, record_id, old, version)
            if lines is not False:
                from crm import deals

                deals.replace_lines(cur, user, record_id, lines)
            if closed is not False:
                _set_closed_on(cur, user, record_id, closed, None)
            done += 1
        cur.execute("UPDATE imports SET undone_at = $t, undone_by = $by WHERE id = $i",
                    {"t": datetime.now(), "by": user.id or None, "i": import_id})
    return {"undone": done, "refused": [r for _n, r in sorted(refused, key=lambda r: r[0],
                                                               reverse=True)]}


def _undo_refusal(cur, user: User, entity: records.Entity, record_id: int,
                  old: dict) -> str | None:
    """Why records.update_in would refuse to give the record its old values back: a custom
    link (or user) field's old value no longer live (a record trashed since, a user
    deactivated) or not visible to the user (records._check_links' words); None when
    it would not."""
    links = [f for f in entity.fields if f.custom and f.type in ("ref", "user")
             and f.name in old and old[f.name] is not None]
    if not links:
        return None
    current = records.fetch(cur, entity, record_id)
    try:
        records._check_links(cur, user, entity, {
            f.name: convert(f, old[f.name]) for f in links
            if records._differs(current[f.name], convert(f, old[f.name]))})
    except ValidationError as exc:
        return "; ".join(exc.errors.values())
    return None


def rejected_csv(import_plan: Plan) -> bytes:
    """The rejected rows as they were in the file, with a column saying why, to fix and
    import again."""
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow([_("row"), _("problem"), *import_plan.source.headers])
    for row in import_plan.rows:
        if row.action == "reject":
            cells = row.cells if row.cells is not None else import_plan.source.rows[row.line - 2]
            writer.writerow([row.line, "; ".join(f"{k}: {v}" for k, v in row.errors.items()),
                             *[records._csv_safe(c) for c in cells]])
    return out.getvalue().encode("utf-8-sig")


# --- the fast path: big CSV files set-based in SQL ---------------------------------------------
#
# DuckDB's own CSV reader puts the file into a staging table of an in-memory database attached
# to the connection (on PostgreSQL: to this process's own in-memory DuckDB, see PG_TABLES);
# each mapped column is converted in SQL (text, email, phone, numbers) or,
# for columns of few distinct values (choices, booleans, dates, owners), by the row path's own
# Python functions over the distinct values, joined back. The checks of the row path become one
# `bad` flag per row; only rejected rows come back to Python, where the row path's functions
# word their reasons. execute() then writes the records, import_records and audit_log rows with
# one INSERT ... SELECT each, in the import's one transaction.
# Columns naming other records (a contact's customer, a task's deal) are resolved in SQL by
# crm/importer_refs.py, which also holds the checks and writes of those entities' commands.

_STAGE = "crm_import_stage"
_SQL_TYPES = {"text", "longtext", "email", "phone", "money", "number", "integer"}
_PY_TYPES = {"choice", "bool", "date", "datetime", "user"}  # converted per distinct value
_KEY_TYPES = {"text", "longtext", "email", "phone"}
_WS = "".join(chr(c) for c in range(0x3001) if chr(c).isspace())  # what str.strip() removes
_NOT_SPACE = "@<>" + "".join(f"\\x{{{ord(c):x}}}" for c in _WS)
_EMAIL_SQL = f"[^{_NOT_SPACE}]+@[^{_NOT_SPACE}]+\\.[^{_NOT_SPACE}]{{2,}}"  # fields.EMAIL_RE
_PHONE_SQL = r"\+?[0-9 ()./-]{5,30}"  # fields.PHONE_RE
_DIGITS_FROM, _DIGITS_TO = "۰۱۲۳۴۵۶۷۸۹٠١٢٣٤٥٦٧٨٩", "01234567890123456789"
_SQL_CAST = {"choice": "VARCHAR", "bool": "BOOLEAN", "date": "DATE", "datetime": "TIMESTAMP",
             "user": "BIGINT", "ref": "BIGINT"}


def _sql_check(entity: records.Entity):
    """(dates that cannot be in the future, whether a consent date needs consent) for the
    entity's own check, when it is one of those written here in SQL too; None otherwise."""
    from crm import customers, leads

    if entity.check is None:
        return (), False
    if entity.check is leads._check:
        return ("consent_date",), True
    if entity.check is customers._check:
        return ("birthday", "consent_date", "first_purchase_date"), True
    from crm import importer_refs

    if entity.table in importer_refs.UPDATE_TABLES:  # their updates: importer_refs writes
        return importer_refs.sql_check(entity)  # the rest of the check (_record_sql)
    return None


def _record_sql(entity: records.Entity, merged) -> list[str] | None:
    """What records.update_many and update_in refuse or do beyond the fields given, over the
    record as it would be stored (merged(n): a field's value there), as SQL conditions: the
    entity's own check, and an only_when field it would drop (a company's birthday); None
    when only Python knows the check. Rows that meet one go through the row path."""
    found = _sql_check(entity)
    if found is None:
        return None
    future, consent = found
    specs = entity.spec

    def kept(n: str) -> str:
        return _kept_sql(specs[n], merged(n), merged)

    tests = [f"coalesce({kept(n)} > $today, false)" for n in future]
    if consent:
        tests.append(f"({kept('consent_date')} IS NOT NULL AND NOT"
                     f" coalesce({kept('consent')}, false))")
    for f in entity.editable:
        if f.only_when:
            tests.append(f"({merged(f.name)} IS NOT NULL AND {kept(f.name)} IS NULL)")
    from crm import importer_refs

    if entity.check is not None and entity.table in importer_refs.UPDATE_TABLES:
        # the check's other conditions (a price names a product; a complaint's dates)
        tests += importer_refs.conditions(entity, merged, {f.name for f in entity.fields})
    return tests


def _kept_sql(spec: Field, value: str, value_of) -> str:
    """A field's value as validate() keeps it: an only_when field (a birthday) is dropped
    while its other field (kind) has another value; value_of names that other field's."""
    if not spec.only_when:
        return value
    other, wanted = spec.only_when
    return f"CASE WHEN {value_of(other)} = {_quote(wanted)} THEN {value} END"


def _quote(text: str) -> str:
    return "'" + str(text).replace("'", "''") + "'"


def _fast_refusal(entity: records.Entity, mapping: dict, mode: str,
                  key: str | None) -> str | None:
    """Why this import cannot go the set-based way (None when it can)."""
    if entity.table == "deals":  # crm/importer_deals.py
        from crm import importer_deals

        return importer_deals.refusal(entity, mapping, mode, key)
    from crm import importer_refs

    specs = {f.name: f for f in importable(entity)}
    # entities naming other records (contacts, tasks, ...): new records only (importer_refs)
    refs = importer_refs.handles(entity, mode)
    if entity.table in importer_refs.TABLES and not refs:
        return _("{entity} are checked by rules of their own").format(entity=_(entity.plural))
    # an only_when field is judged by its other field: the file's or, on create, its default
    # (an update without that other field: by the record's, at write time, importer_kept)
    kept_apart = any(f.only_when and f.default is not None for f in specs.values())
    # unique fields are checked set-based (_match: an update's own record may keep its code)
    if not refs and (entity.creator or entity.parent or entity.table in ("deals", "activities")
                     or _sql_check(entity) is None) or kept_apart:
        return _("{entity} are checked by rules of their own").format(entity=_(entity.plural))
    # custom links are resolved set-based for every entity (importer_refs.ref_map)
    if any(specs[v].type not in _SQL_TYPES | _PY_TYPES
           and not ((refs or specs[v].custom) and importer_refs.mappable(specs[v]))
           for v in mapping.values() if v in specs):
        return _("some mapped fields are checked one row at a time (links, web addresses,"
                 " multiple choices)")
    if any(v in PSEUDO.get(entity.table, {}) for v in mapping.values()):
        return _("{entity} are checked by rules of their own").format(entity=_(entity.plural))
    for name in {v for v in mapping.values() if v}:
        spec = specs[name]
        if (refs or spec.custom) and importer_refs.mappable(spec):
            continue
        if spec.type not in _SQL_TYPES | _PY_TYPES or (spec.type == "user"
                                                        and name != "owner_id"):
            return _("{field} names other records").format(field=spec.shown_label)
    if key and specs[key].type not in _KEY_TYPES:
        return _("{field} names other records").format(field=specs[key].shown_label)
    return None


# On PostgreSQL the file is read and checked in this process's own in-memory DuckDB (the
# stage connection: one a process, a cursor a unit of work); only what the checks need (the
# file's keys and unique values) goes to PostgreSQL and back, and execute() copies the rows to
# write into a TEMP table of the import's transaction (COPY), where one INSERT ... SELECT each
# writes the records, import_records and audit rows as on DuckDB.
PG_TABLES = ("leads", "customers", "products", "contacts", "tasks", "activities")  # entities
# planned set-based on PostgreSQL (new records, updates and upserts): a contact's, task's or
# activity's links are resolved among the names PostgreSQL finds for the file's texts
# (importer_refs.ref_map), and checked again at the write on PostgreSQL (importer_recheck)
_LOCAL: list = []  # the stage connection, made on first use
_LOCAL_LOCK = threading.Lock()


def _stage_cursor(db: Database | None):
    """A cursor where the staging tables live: the database's own on DuckDB (they join its
    tables), this process's in-memory DuckDB beside a PostgreSQL database (db None)."""
    if db is not None and db.dialect == dialect.DUCKDB:
        return db.cursor()
    with _LOCAL_LOCK:
        if not _LOCAL:
            _LOCAL.append(duckdb.connect(":memory:"))
        return _LOCAL[0].cursor()


def _attach(cur) -> None:
    if not cur.execute("SELECT 1 FROM duckdb_databases() WHERE database_name = $n",
                       {"n": _STAGE}).fetchall():
        try:
            cur.execute(f"ATTACH ':memory:' AS {_STAGE}")
        except duckdb.Error:  # attached meanwhile by another thread
            pass


# a text longer than this (in UTF-8 bytes) is none of the MISSING words, even lowered: at
# most 3 bytes a character lower to one of theirs
_MISSING_BYTES = 3 * max(len(m) for m in MISSING)
# and one that starts with none of their first letters (either case; ord('') is -1) neither
_MISSING_FIRST = sorted({-1} | {ord(ch) for m in MISSING if m for ch in (m[0], m[0].upper())})
_MISSING_WORDS = sorted(MISSING)


def _one_of(expr: str, values: list) -> str:
    """expr IN (values) as a CASE: in a projection DuckDB turns IN and list_contains of
    constants into a join over every row, which ignores the CASE around it that spares most
    rows the test (0.15 s a million cells)."""
    whens = " ".join("WHEN " + (str(v) if isinstance(v, int) else "'" + v.replace("'", "''")
                                + "'") + " THEN true" for v in values)
    return f"CASE {expr} {whens} ELSE false END"


_SPACE_CLASS = "".join(f"\\x{{{ord(c):x}}}" for c in _WS)
_WIDE_WS = ", ".join(str(ord(c)) for c in _WS if ord(c) > 32)  # white space beyond ASCII


# The values the fast path's SQL compares with, passed as parameters ($c_...).
_CONSTANTS = {
    "c_ws": _WS, "c_ws_edge": f"^[{_SPACE_CLASS}]|[{_SPACE_CLASS}]$",
    "c_email": _EMAIL_SQL, "c_phone": _PHONE_SQL,
    "c_digits": _DIGITS_FROM, "c_latin": _DIGITS_TO,
    "c_num_from": _DIGITS_FROM + "٫٬", "c_num_to": _DIGITS_TO + ".,",
    # translate() is slow (1 s a million cells): only where there is something to translate,
    # and the class's test only in text beyond ASCII (strlen counts bytes, length characters)
    "c_digit_class": f"[{_DIGITS_FROM}]", "c_num_class": f"[{_DIGITS_FROM}٫٬]",
}


def _strip_sql(c: str) -> str:
    """str.strip() in SQL. trim with a set of characters and the regular expression are slow:
    a cell whose first and last characters are visible ASCII (most) needs neither, and
    reading those two is cheaper than one regular expression over the row (0.5 s a million
    rows)."""
    return (f"CASE WHEN ord({c}) BETWEEN 33 AND 126 AND ord(right({c}, 1)) BETWEEN 33 AND 126"
            f" THEN {c} WHEN regexp_matches({c}, $c_ws_edge) THEN trim({c}, $c_ws)"
            f" ELSE {c} END")


def _distinct_map(db: Database, user: User, spec: Field, texts: list[str], known=None):
    """The row path's conversion of each distinct text of a column: (note, {text: (coerced
    value, coerce error)}, [(text, clean value as text, coerce error?, validation error?)])."""
    if spec.type in ("date", "datetime"):
        column = _dates(spec, texts)
    elif spec.type in ("user", "ref"):
        column = resolve(db, user, spec, texts, known=known)
    else:
        column = coerce(spec, texts)
    found, table = {}, []
    for i, text in enumerate(texts):
        if i in column.errors:
            found[text] = (None, column.errors[i])
            table.append((text, None, True, False))
            continue
        value = column.values[i]
        found[text] = (value, None)
        try:
            clean, bad = convert(spec, value), False
        except ValueError:
            clean, bad = None, True
        if isinstance(clean, datetime):
            clean = clean.isoformat(sep=" ")
        elif isinstance(clean, (date, bool, int)):
            clean = str(clean).lower() if isinstance(clean, bool) else str(clean)
        table.append((text, clean, False, bad))
    return column.note, found, table


def _sql_value(spec: Field, c: str, p: str) -> tuple[list[list[tuple[str, str]]], str,
                                                   str, str]:
    """The row path's coercion and validation of raw text column c in SQL, as layers of
    named expressions (each layer reads the names of the ones before; names start with p),
    and the names of the clean value, the coercion error and the validation error."""
    layers = [[(f"{p}_t", _strip_sql(c))],
              # the missing words are short: a longer text (in bytes, even lowered) is none
              [(f"{p}_x", f"CASE WHEN {c} IS NULL THEN NULL WHEN strlen({p}_t) >"
                          f" {_MISSING_BYTES} THEN {p}_t"
                          f" WHEN NOT {_one_of(f'ord({p}_t)', _MISSING_FIRST)} THEN {p}_t"
                          f" WHEN {_one_of(f'lower({p}_t)', _MISSING_WORDS)} THEN NULL"
                          f" ELSE {p}_t END")]]
    x = f"{p}_x"
    too_long = f"coalesce(length({x}) > {int(spec.max_length or 10**9)}, false)"
    if spec.type in ("text", "longtext"):
        layers.append([(f"{p}_v", x), (f"{p}_ce", "false"), (f"{p}_ve", too_long)])
    elif spec.type == "email":
        layers.append([(f"{p}_v", f"lower({x})")])
        layers.append([(f"{p}_ce", "false"), (f"{p}_ve", f"({too_long} OR coalesce(NOT"
                                              f" regexp_full_match({p}_v, $c_email),"
                                              " false))")])
    elif spec.type == "phone":
        layers.append([(f"{p}_v", f"CASE WHEN strlen({x}) = length({x}) THEN {x}"
                                  f" WHEN regexp_matches({x}, $c_digit_class) THEN"
                                  f" translate({x}, $c_digits, $c_latin) ELSE {x} END")])
        layers.append([(f"{p}_ce", "false"), (f"{p}_ve", f"({too_long} OR coalesce(NOT"
                                              f" regexp_full_match({p}_v, $c_phone),"
                                              " false))")])
    else:  # numbers: importer.number() (1,234.56 · 1.234,56 · 1 234,56 € · ۱٬۲۳۴٫۵ · (300))
        a, b = f"{p}_a", f"{p}_b"
        layers.append([(a, f"CASE WHEN strlen({x}) = length({x}) THEN {x}"
                           f" WHEN regexp_matches({x}, $c_num_class) THEN"
                           f" translate({x}, $c_num_from, $c_num_to) ELSE {x} END")])
        layers.append([(b, f"regexp_replace({a}, '[^0-9.,+\\-]', '', 'g')"),
                       (f"{p}_neg", f"{a} LIKE '(%)'")])
        comma = (f"CASE WHEN contains({b}, ',') AND contains({b}, '.') THEN"
                 f" instr(reverse({b}), ',') < instr(reverse({b}), '.')"
                 f" WHEN contains({b}, ',') THEN"
                 f" NOT regexp_full_match({b}, '[+-]?[0-9]{{1,3}}(,[0-9]{{3}})+')"
                 " ELSE false END")
        layers.append([(f"{p}_cl", f"CASE WHEN {comma} THEN replace(replace({b}, '.', ''),"
                                   f" ',', '.') ELSE replace({b}, ',', '') END")])
        layers.append([(f"{p}_ok", f"coalesce(regexp_full_match({p}_cl,"
                                   f" '[+-]?([0-9]+(\\.[0-9]*)?|\\.[0-9]+)'), false)")])
        layers.append([(f"{p}_n", f"CASE WHEN {p}_ok THEN (CASE WHEN {p}_neg THEN -1 ELSE 1"
                                  f" END) * TRY_CAST({p}_cl AS DECIMAL(38, 10)) END")])
        n = f"{p}_n"
        checks = [f"{n} IS NULL"]
        if spec.min_value is not None:
            checks.append(f"{n} < {Decimal(str(spec.min_value))}")
        if spec.max_value is not None:
            checks.append(f"{n} > {Decimal(str(spec.max_value))}")
        if spec.type == "integer":
            checks.append(f"{n} <> trunc({n})")
            value = f"CAST({n} AS BIGINT)"
        elif spec.type == "money":
            value = f"round_even({n}, 2)"
        else:
            value = n
        layers.append([(f"{p}_v", f"CASE WHEN {p}_ok THEN {value} END"),
                       (f"{p}_ce", f"({x} IS NOT NULL AND NOT {p}_ok)"),
                       (f"{p}_ve", f"({x} IS NOT NULL AND {p}_ok AND ({' OR '.join(checks)}))")])
    return layers, f"{p}_v", f"{p}_ce", f"{p}_ve"


def _stage_raw(cur, source: Source, raw: str) -> tuple[str | None, str | None]:
    """The file into table raw by DuckDB's reader: (the SELECT of its data rows with their
    lines, blank rows left out, None), or (None, why DuckDB cannot read it as a plain CSV)."""
    width = len(source.headers)
    columns = ", ".join(f"'c{i}': 'VARCHAR'" for i in range(width))
    staging = (f"CREATE TABLE {raw} AS SELECT * FROM read_csv($path, header = true,"
               f" auto_detect = false, columns = {{{columns}}}, delim = $sep, quote = '\"',"
               " escape = '\"', strict_mode = true, null_padding = false)")
    try:
        try:
            cur.execute(staging, {"path": source.path, "sep": source.delimiter})
        except duckdb.Error:
            if not _settle(source):  # not UTF-8 beyond its head: read re-encoded
                raise
            cur.execute(f"DROP TABLE IF EXISTS {raw}")
            cur.execute(staging, {"path": source.path, "sep": source.delimiter})
    except duckdb.Error as exc:
        cur.execute(f"DROP TABLE IF EXISTS {raw}")
        return None, _("DuckDB's CSV reader found rows it cannot read as plain CSV"
                       " ({reason})").format(reason=str(exc).splitlines()[0][:200])
    cells = ", ".join(f"c{i}" for i in range(width))
    # a blank row: every cell missing or white space; the regular expression only for
    # rows whose first cell there starts with white space (ord: its first character)
    first = f"ord(coalesce({cells}))"
    blank = (f"CASE WHEN coalesce({first}, -1) <= 32 OR {first} IN ({_WIDE_WS}) THEN NOT"
             f" coalesce(regexp_matches(concat_ws('', {cells}), '[^{_SPACE_CLASS}]'),"
             " false) ELSE false END")
    total, blanks = cur.execute(f"SELECT count(*), count(*) FILTER (WHERE {blank})"
                                f" FROM {raw}").fetchone()
    if total == blanks:
        raise ImportFileError(_("The file has a header row but no data rows."))
    if isinstance(source.rows, _FileRows):
        source.rows.known_len = total - blanks
    return (f"SELECT rowid + 2 AS line, {cells} FROM {raw}" if not blanks else
            f"SELECT row_number() OVER (ORDER BY rowid) + 1 AS line, {cells} FROM {raw}"
            f" WHERE NOT ({blank})"), None


def _fast_plan(db: Database, user: User, entity: records.Entity, source: Source,
               mapping: dict, key: str | None, mode: str = "create",
               pipeline_id: int | None = None, create_missing: bool = False):
    """The plan of a big CSV, set-based; a reason (str) when DuckDB cannot read the file as
    a plain CSV and the row path must. Updates and upserts are planned set-based too (their
    dry run: counts, rejected rows and the changes of the first rows), and written by
    execute() through the row path."""
    from crm import importer_refs

    specs = {f.name: f for f in importable(entity)}
    name = f"{_STAGE}.i{uuid.uuid4().hex[:16]}"
    raw = name + "_raw"
    pg = db.dialect != dialect.DUCKDB  # staged in this process's DuckDB (_stage_cursor)
    cur = _stage_cursor(db)
    try:
        _attach(cur)
        width = len(source.headers)
        src, reason = _stage_raw(cur, source, raw)
        if reason:
            return reason

        notes, converters, joins, selects, flags, clean = [], {}, [], [], [], {}
        values_sql, created = {}, {}  # created: stages to add (create_missing)
        layers: list[list[tuple[str, str]]] = []
        picked: list[str] = []  # columns converted by distinct value, from their joins
        lines = None  # deals' product lines: crm/importer_lines.py
        for index, header in enumerate(source.headers):
            field_name = mapping.get(header)
            if not field_name:
                continue
            if entity.table == "deals" and field_name in ("created_at", "closed_on"):
                from crm import importer_deals  # a deal's engage or close date

                m = f"{name}_m{index}"
                note, found = importer_deals.date_map(cur, PSEUDO[entity.table][field_name],
                                                      raw, index, m)
                if note:
                    notes.append(note)
                converters[field_name] = (header, index, found)
                joins.append(f" LEFT JOIN {m} m{index} ON m{index}.txt = r.c{index}")
                picked.append(f"m{index}.val AS x_{field_name},"
                              f" coalesce(m{index}.cerr, false) AS xe_{field_name}")
                continue
            if field_name == "product_lines":
                from crm import importer_lines

                lines = importer_lines.stage_column(cur, db, raw, index, name)
                if isinstance(lines, str):
                    for table in [raw, f"{name}_pl", f"{name}_lines"] + [
                            f"{name}_m{m}" for m in range(width)]:
                        cur.execute(f"DROP TABLE IF EXISTS {table}")
                    return lines
                converters[field_name] = (header, index, lines[0])
                joins.append(lines[1])
                picked += lines[2]
                continue
            spec, c = specs[field_name], f"r.c{index}"
            if spec.type == "ref" and spec.ref == "stages":  # a deal update's stage
                from crm import importer_deals

                m = f"{name}_m{index}"
                note, found = importer_deals.stage_map(cur, db, user, spec, raw, index, m,
                                                       pipeline_id, create_missing, created)
                table = None
            elif spec.type == "ref":  # names of other records, resolved in SQL
                m = f"{name}_m{index}"
                note, found = importer_refs.ref_map(cur, db, user, spec, raw, index, m)
                table = None
            elif spec.type in _PY_TYPES:
                texts = [r[0] for r in cur.execute(
                    f"SELECT DISTINCT c{index} FROM {raw} WHERE c{index} IS NOT NULL"
                ).fetchall()]
                note, found, table = _distinct_map(db, user, spec, texts)
                m = f"{name}_m{index}"
                cur.execute(f"CREATE TABLE {m} (txt VARCHAR, val VARCHAR, cerr BOOLEAN,"
                            " verr BOOLEAN)")
            if spec.type in _PY_TYPES or spec.type == "ref":
                if note:
                    notes.append(note)
                converters[field_name] = (header, index, found)
                if table:
                    cur.execute(f"INSERT INTO {m} SELECT unnest($t), unnest($v), unnest($c),"
                                " unnest($e)", {"t": [r[0] for r in table],
                                                "v": [r[1] for r in table],
                                                "c": [r[2] for r in table],
                                                "e": [r[3] for r in table]})
                joins.append(f" LEFT JOIN {m} m{index} ON m{index}.txt = {c}")
                value = f"CAST(m{index}.val AS {_SQL_CAST[spec.type]})"
                if spec.type == "bool":
                    value = f"coalesce({value}, false)"
                picked.append(f"{value} AS q{index}_v, coalesce(m{index}.cerr, false) AS"
                              f" q{index}_ce, coalesce(m{index}.verr, false) AS q{index}_ve")
                value, cerr, verr = f"q{index}_v", f"q{index}_ce", f"q{index}_ve"
            else:
                converters[field_name] = (header, index, None)
                column_layers, value, cerr, verr = _sql_value(spec, c, f"q{index}")
                for depth, named in enumerate(column_layers):
                    while len(layers) <= depth:
                        layers.append([])
                    layers[depth].extend(named)
            values_sql[field_name] = value
            flags.append(f"({cerr}) AS ce_{field_name}")
            flags.append(f"({verr}) AS ve_{field_name}")
            clean[field_name] = f"f_{field_name}"
        kept_params = {}

        def value_sql(field_name: str) -> str:  # a field's value in the typed rows
            if field_name in values_sql:
                return values_sql[field_name]
            kept_params[f"k_{field_name}"] = convert(specs[field_name],
                                                     specs[field_name].default)
            return f"$k_{field_name}"

        for field_name, value in values_sql.items():
            kept = value if importer_kept.later(specs[field_name], mode, values_sql) \
                else _kept_sql(specs[field_name], value, value_sql)
            if lines and field_name == "amount":  # plan(): priced from the row's lines
                kept = f"coalesce({kept}, pl_amount)"
            selects.append(f"{kept} AS f_{field_name}")
        if lines:
            selects += ["pl", "pl_keys", "pl_err"]
        # no amount column: a row's lines price it, a row without keeps the deal's (plan())
        priced = bool(lines) and mode != "create" and "amount" not in values_sql
        if priced:
            selects += ["pl_amount AS f_amount", "true AS pl_priced"]
        if key:
            header, index, _found = converters[key]
            # the key's text, as _key_text has it (an email's clean value is that already)
            selects.append(f"q{index}_v AS k" if specs[key].type == "email"
                           else f"lower(q{index}_x) AS k")
        # the row path's checks, as one flag per row: `bad` those of a new record, `bad_u`
        # those of an update (the fields the file brings; the entity's check on create only)
        bad = [f"ce_{n} OR ve_{n}" for n in clean] + (["pl_err"] if lines else [])
        if priced:  # (checked with the lines: importer_lines.stage_column)
            clean["amount"] = "f_amount"
        constants = {}
        for n in clean:
            if specs[n].required:
                bad.append(f"f_{n} IS NULL")
        params = {"today": date.today(), **_CONSTANTS, **kept_params}
        if "owner_id" in clean and not user.sees_all:
            bad.append("coalesce(f_owner_id <> $me, false)")
            params["me"] = user.id
        bad_update = list(bad)
        if entity.table == "deals":  # _check: the file's contact must work for the file's
            # customer, a lost stage needs the file's lost reason (an upsert's new deals too)
            from crm import importer_deals

            deal_rules = importer_deals.update_conditions(set(clean))
            bad_update += deal_rules
            if mode == "upsert":
                bad += deal_rules
        for spec in entity.editable:
            if spec.name not in clean:
                constants[spec.name] = convert(spec, spec.default)
                if constants[spec.name] is None and spec.required:
                    bad.append("true")
        future, consent = importer_refs.sql_check(entity) or _sql_check(entity)

        def value_of(field_name: str) -> str:
            if field_name in clean and importer_kept.later(specs[field_name], mode, clean):
                # a new record of an upsert: kept by the other field's default
                return _kept_sql(specs[field_name], clean[field_name], value_of)
            if field_name in clean:
                return clean[field_name]
            params[f"k_{field_name}"] = constants[field_name]
            return f"$k_{field_name}"

        for n in future:
            bad.append(f"coalesce({value_of(n)} > $today, false)")
        if consent:
            bad.append(f"({value_of('consent_date')} IS NOT NULL AND NOT"
                       f" coalesce({value_of('consent')}, false))")
        bad += importer_refs.conditions(entity, value_of, set(clean))
        dated = []  # a deal's engage and close dates: checked, kept for new deals
        if entity.table == "deals" and {"created_at", "closed_on"} & set(converters):
            from crm import importer_deals

            more, dated, checks = importer_deals.date_sql(
                [n for n in converters if n in importer_deals.DATES], set(clean))
            selects += more
            bad += checks
            bad_update += checks
        inner = (f"SELECT {', '.join(['r.*'] + picked)}"
                 f" FROM ({src}) r" + "".join(joins))
        for named in layers:  # one projection per layer: no expression is computed twice
            inner = (f"SELECT *, {', '.join(f'{e} AS {a}' for a, e in named)}"
                     f" FROM ({inner}) r")
        typed = f"SELECT r.line, {', '.join(selects)}, {', '.join(flags)} FROM ({inner}) r"
        # the flags only make up `bad`: the checked rows keep the values, the key and it
        kept = ["line", *clean.values(), *(["k"] if key else []), *dated,
                *(["pl", "pl_keys"] if lines else []), *(["pl_priced"] if priced else [])]
        checked = (f"SELECT {', '.join(kept)}, ({' OR '.join(bad) or 'false'}) AS bad"
                   + (f", ({' OR '.join(bad_update) or 'false'}) AS bad_u" if mode != "create"
                      else "") + f" FROM ({typed})")
        # the checked rows first; duplicates, records already there and the ids' order only
        # when there are any (a clean file into an empty table needs none of it)
        checked_sql = f"CREATE TABLE {name}_c AS {checked}"
        cur.execute(checked_sql, _used(params, checked_sql))
        n_bad, n_rows = cur.execute(f"SELECT count(*) FILTER (WHERE bad), count(*)"
                                    f" FROM {name}_c").fetchone()
        dups = existing = False
        unique = [n for n in entity.unique if n in clean]  # a unique field the file brings
        if key:
            cur.execute(f"CREATE TABLE {name}_d AS SELECT k, min(line) AS first FROM {name}_c"
                        " WHERE k IS NOT NULL GROUP BY k HAVING count(*) > 1")
            dups = bool(cur.execute(f"SELECT count(*) FROM {name}_d").fetchone()[0])
            where, visible = records.visible(entity, user)
            if pg and mode == "create" and db.scalar(  # updates: pg_snapshot below
                    f"SELECT count(*) FROM (SELECT 1 FROM {entity.table} t WHERE {where}"
                    f" AND t.{key} IS NOT NULL LIMIT 1) x", visible):
                # the file's keys that records the user sees have, from PostgreSQL
                existing = bool(_pg_found(
                    db, cur, f"SELECT DISTINCT k FROM {name}_c WHERE k IS NOT NULL",
                    f"SELECT DISTINCT x.v FROM json_array_elements_text(CAST($vals AS JSON)) AS x(v)"
                    f" JOIN {entity.table} t ON lower(CAST(t.{key} AS VARCHAR)) = x.v"
                    f" WHERE {where}", visible, f"{name}_k", "k VARCHAR"))
            elif not pg:
                existing = bool(cur.execute(f"SELECT count(*) FROM {entity.table} t WHERE"
                                            f" {where} AND t.{key} IS NOT NULL", visible
                                            ).fetchone()[0])
        for n in unique if pg and mode == "create" else ():
            # the live records' values of a unique field the file brings, from PostgreSQL
            _pg_found(db, cur, f"SELECT DISTINCT lower(f_{n}) FROM {name}_c"
                               f" WHERE f_{n} IS NOT NULL",
                      f"SELECT lower(t.{n}), min(t.id) FROM {entity.table} t JOIN"
                      f" json_array_elements_text(CAST($vals AS JSON)) AS x(v) ON lower(t.{n}) = x.v"
                      f" WHERE t.deleted_at IS NULL AND t.{n} IS NOT NULL GROUP BY 1", {},
                      f"{name}_u{n}", "v VARCHAR, id BIGINT")
        if mode != "create":
            if pg:  # the records the file's keys name, and the codes taken, from PostgreSQL
                pg_snapshot(db, cur, user, entity, name, key, list(clean))
            counts, rejected, preview = _fast_changes(cur, user, entity, name, src, width,
                                                      mode, key, list(clean), pg)
            # the rejected rows' names resolved in SQL, for the row path's words
            importer_refs.fill(cur, converters, specs, name,
                               [(r[0], r[1], *r[3:]) for r in rejected])
        elif not (n_bad or dups or existing or unique):
            cur.execute(f"ALTER TABLE {name}_c RENAME TO {name.split('.')[1]}")
            counts, write = {"create": n_rows}, ("true", "line - 1")
        else:
            action = "CASE WHEN s.bad THEN 'reject' ELSE 'create' END"
            joins_sql, dup_of = "", "NULL"
            if existing and pg:
                joins_sql += f" LEFT JOIN {name}_k e ON e.k = s.k"
            elif existing:
                params.update(visible)
                joins_sql += (f" LEFT JOIN (SELECT DISTINCT lower(CAST(t.{key} AS VARCHAR)) AS k"
                              f" FROM {entity.table} t WHERE {where}) e ON e.k = s.k")
            if existing:
                action = f"CASE WHEN e.k IS NOT NULL THEN 'skip' ELSE {action} END"
            if dups:
                joins_sql += f" LEFT JOIN {name}_d d ON d.k = s.k"
                action = f"CASE WHEN s.line > d.first THEN 'reject' ELSE {action} END"
                dup_of = "CASE WHEN s.line > d.first THEN d.first END"
            acted = (f"SELECT s.*, {dup_of} AS dup_of, {action} AS action"
                     f" FROM {name}_c s{joins_sql}")
            for n in unique:  # _check_unique: among the rows to create, and the live records
                v = f"lower(b.f_{n})"
                taken = (f"{name}_u{n}" if pg else f"(SELECT lower({n}) AS v, min(id) AS id"
                         f" FROM {entity.table} WHERE deleted_at IS NULL AND {n} IS NOT NULL"
                         " GROUP BY 1)")
                acted = (
                    f"SELECT b.* EXCLUDE (action), CASE WHEN b.action = 'create' AND {v} IS NOT"
                    f" NULL AND b.line > min(b.line) FILTER (WHERE b.action = 'create') OVER"
                    f" (PARTITION BY {v}) THEN min(b.line) FILTER (WHERE b.action = 'create')"
                    f" OVER (PARTITION BY {v}) END AS u_{n}_first, CASE WHEN b.action ="
                    f" 'create' THEN tk.id END AS u_{n}_id, CASE WHEN b.action = 'create' AND"
                    f" {v} IS NOT NULL AND (b.line > min(b.line) FILTER (WHERE b.action ="
                    f" 'create') OVER (PARTITION BY {v}) OR tk.id IS NOT NULL) THEN 'reject'"
                    f" ELSE b.action END AS action FROM ({acted}) b LEFT JOIN {taken} tk"
                    f" ON tk.v = {v}")
            sql = (f"CREATE TABLE {name} AS SELECT *, CASE WHEN action = 'create' THEN"
                   " row_number() OVER (PARTITION BY action = 'create' ORDER BY line) END"
                   f" AS seq FROM ({acted})")
            cur.execute(sql, _used(params, sql))
            counts = dict(cur.execute(f"SELECT action, count(*) FROM {name} GROUP BY action")
                          .fetchall())
            write = ("action = 'create'", "seq")
        if mode != "create":  # its checked rows (_c, _d) stay: execute() matches them again,
            # and refuses an update whose record changed since (_v: the versions seen here)
            cur.execute(f"CREATE TABLE {name}_v AS SELECT line, version FROM {name}"
                        " WHERE action = 'update'")
            cur.execute(f"DROP TABLE IF EXISTS {name}")
        else:
            cur.execute(f"DROP TABLE IF EXISTS {name}_c")
            cur.execute(f"DROP TABLE IF EXISTS {name}_d")
            if counts.get("reject"):
                rejected = cur.execute(
                    f"SELECT s.line, s.dup_of, {', '.join('r.c%d' % i for i in range(width))}"
                    + "".join(f", s.u_{n}_first, s.u_{n}_id" for n in unique)
                    + f" FROM {name} s JOIN ({src}) r ON r.line = s.line"
                    " WHERE s.action = 'reject' ORDER BY s.line").fetchall()
                importer_refs.fill(cur, converters, specs, name, rejected)
            else:
                rejected = []
        for m in range(width):
            cur.execute(f"DROP TABLE IF EXISTS {name}_m{m}")
        for table in [f"{name}_k"] + [f"{name}_u{n}" for n in unique]:  # PostgreSQL's
            cur.execute(f"DROP TABLE IF EXISTS {table}")
        cur.execute(f"DROP TABLE {raw}")
    except BaseException:
        for table in [raw, name, name + "_c", name + "_d", name + "_e", name + "_k",
                      name + "_v", name + "_pl", name + "_lines"] + [
                f"{name}_m{m}" for m in range(len(source.headers))] + [
                f"{name}_u{n}" for n in entity.unique]:
            try:
                cur.execute(f"DROP TABLE IF EXISTS {table}")
            except Exception:  # noqa: BLE001 - cleaning up after the real error
                pass
        raise
    finally:
        cur.close()
    if mode != "create":
        found = _fast_changes_plan(db, user, entity, source, mapping, mode, key, specs,
                                   converters, notes, counts, rejected, preview)
        found.pipeline_id = pipeline_id  # (a replan on the row path resolves stages there)
        found.new_stages = created.get("stages", set())  # added by execute (_add_stages)
        from crm import importer_updates

        importer_updates.keep(db, found, name, constants, counts, rejected, preview)
        if lines:  # the first updates' lines, as plan() shows them
            from crm import importer_lines

            importer_lines.preview(db, found, name, lines[0])
        found._db = db  # whose stage holds them (PostgreSQL: this process's DuckDB)
        return found
    rows = []
    for line, dup_of, *texts in rejected:
        cells, taken = texts[:width], texts[width:]
        row = _fast_row(user, entity, specs, converters, key, line, dup_of, list(cells))
        for i, n in enumerate(unique):  # _check_unique's words, where SQL found it
            first, other = taken[2 * i:2 * i + 2]
            label = specs[n].shown_label
            if row.action == "create" and first is not None:
                row.errors[label] = _("the same {field} as row {line}").format(
                    field=label, line=first)
            elif row.action == "create" and other is not None:
                row.errors[label] = _("{entity} #{id} already has this {field}").format(
                    entity=_(entity.label), id=other, field=label)
            if row.errors:
                row.action = "reject"
        rows.append(row)
    if unique and any(r.action == "create" for r in rows):
        # a row SQL rejected that the row path takes would take part in its uniqueness
        # check, which the staged rows did not see: the row path decides them all
        _drop_quietly(db, name)
        return _("{entity} are checked by rules of their own").format(entity=_(entity.plural))
    if rejected:
        # rows SQL rejected but the row path would take: written row by row in execute()
        rescued = sum(1 for r in rows if r.action == "create")
        counts["reject"] = counts.get("reject", 0) - len(rejected) + (len(rows) - rescued)
    result = Plan(entity, source, mapping, "create", key, rows, notes, staged=name,
                  staged_counts={"create": counts.get("create", 0),
                                 "skip": counts.get("skip", 0)})
    result._constants = constants  # the values of unmapped fields, for execute
    result._write = write  # which staged rows to write, and their order (1, 2, ...)
    result._db = db  # whose stage holds them (PostgreSQL: this process's DuckDB)
    weakref.finalize(result, _drop_quietly, db, name)
    return result


PREVIEW_ROWS = 1000  # updates whose changes a set-based dry run shows, field by field


def pg_snapshot(db: Database, cur, user: User, entity: records.Entity, name: str, key: str,
                fields: list[str]) -> None:
    """For an update or upsert on PostgreSQL: stage table {name}_t, a copy of the records the
    user sees that the file's keys name (the columns _match and prepare read: the fields,
    the key, the version), and {name}_tk<field> of the live records' values of a
    unique field the file brings. Made again when execute() matches the rows again."""
    where, visible = records.visible(entity, user)
    cur.execute(f"DROP TABLE IF EXISTS {name}_t")
    # the columns the stage's SQL reads (the condition of visibility names its own; the
    # other field a kept one is judged by, a birthday by the kind: importer_kept.stored)
    kept = [entity.spec[n].only_when[0] for n in importer_kept.fields(entity, fields)]
    wanted = ["id", "version", key, *fields, *kept, *re.findall(r"\bt\.(\w+)", where)]
    columns = ", ".join(f"t.{c}" for c in dict.fromkeys(wanted))
    _pg_found(db, cur, f"SELECT DISTINCT k FROM {name}_c WHERE k IS NOT NULL",
              f"SELECT {columns} FROM {entity.table} t WHERE {where} AND"
              f" lower(CAST(t.{key} AS VARCHAR)) IN (SELECT x.v FROM"
              f" json_array_elements_text(CAST($vals AS JSON)) AS x(v))", visible, f"{name}_t", None)
    for n in [n for n in entity.unique if n in fields]:
        cur.execute(f"DROP TABLE IF EXISTS {name}_tk{n}")
        _pg_found(db, cur, f"SELECT DISTINCT lower(f_{n}) FROM {name}_c"
                           f" WHERE f_{n} IS NOT NULL",
                  f"SELECT lower(t.{n}), min(t.id) FROM {entity.table} t JOIN"
                  f" json_array_elements_text(CAST($vals AS JSON)) AS x(v) ON lower(t.{n}) = x.v"
                  f" WHERE t.deleted_at IS NULL AND t.{n} IS NOT NULL GROUP BY 1", {},
                  f"{name}_tk{n}", "v VARCHAR, id BIGINT")


# DuckDB's types of PostgreSQL's columns (by type OID; others as text)
_DUCK_TYPES = {16: "BOOLEAN", 20: "BIGINT", 21: "BIGINT", 23: "BIGINT", 700: "DOUBLE",
               701: "DOUBLE", 1082: "DATE", 1114: "TIMESTAMP", 1184: "TIMESTAMPTZ"}


def _duck_type(column) -> str:
    if column.type_code == 1700:  # numeric: its precision and scale where declared
        if column.precision and column.precision <= 38 and column.scale is not None:
            return f"DECIMAL({column.precision}, {column.scale})"
        return "DECIMAL(38, 10)"
    return _DUCK_TYPES.get(column.type_code, "VARCHAR")


def _pg_found(db: Database, cur, values: str, found: str, params: dict, out: str,
              columns: str | None) -> int:
    """Stage table out (columns; None: found's own, typed as PostgreSQL types them) of the rows
    PostgreSQL's query found gives for the distinct values the stage's query values gives
    (passed as $vals, one JSON array: the driver quotes an array's items one by one, 2.5 s
    for 100,000 keys, a text at once); returns their count. What the checks need of the
    records, without moving the file or the table."""
    texts = [r[0] for r in cur.execute(values).fetchall()]
    pg = db.cursor()
    try:
        return pg_into_stage(pg, cur, found, {**_used(params, found),
                                              "vals": json.dumps(texts)}, out, columns)
    finally:
        pg.close()


def pg_into_stage(pg, cur, sql: str, params: dict, out: str, columns: str | None = None) -> int:
    """The rows of a PostgreSQL query (cursor pg) into new stage table out (columns; None:
    the query's own, typed as PostgreSQL types them); returns their count."""
    rows = pg.execute(sql, _used(params, sql)).fetchall()
    if columns is None:
        columns = ", ".join(f'"{d.name}" {_duck_type(d)}' for d in pg._cur.description)
    cur.execute(f"CREATE TABLE {out} ({columns})")
    if rows:  # through Arrow: exact decimals and dates, in C (a million rows in a second)
        import pyarrow as pa

        view = f"crm_found_{uuid.uuid4().hex[:12]}"
        cur.register(view, pa.table({f"a{i}": pa.array([r[i] for r in rows])
                                     for i in range(len(rows[0]))}))
        try:
            cur.execute(f"INSERT INTO {out} SELECT * FROM {view}")
        finally:
            cur.unregister(view)
    return len(rows)


def _fast_changes(cur, user: User, entity: records.Entity, name: str, src: str, width: int,
                  mode: str, key: str, fields: list[str], pg: bool = False):
    """An update's or upsert's checked rows against the records there, set-based: (counts by
    action, the rejected rows [(line, dup_of, record_id, *cells)], the first PREVIEW_ROWS
    updates [(line, record_id, version, current values..., new values...)])."""
    table = f"{name}_t" if pg else entity.table  # PostgreSQL: pg_snapshot's copy
    counts = _match(cur, user, entity, name, mode, key, fields, pg)
    unique = "".join(f", s.u_{n}_first, s.u_{n}_id" for n in entity.unique if n in fields)
    rejected = [] if not counts.get("reject") else cur.execute(
        f"SELECT s.line, s.dup_of, s.record_id, {', '.join('r.c%d' % i for i in range(width))}"
        f"{unique} FROM {name} s JOIN ({src}) r ON r.line = s.line WHERE s.action = 'reject'"
        " ORDER BY s.line").fetchall()
    # deals: what _close_date reads (the deal's stage and close date, the file's close date)
    dated = ", t.stage_id, t.closed_on, s.x_closed_on" if entity.table == "deals" and not pg \
        and "x_closed_on" in {r[0] for r in cur.execute(
            f"SELECT * FROM {name}_c LIMIT 0").description} else ""
    from crm import importer_lines

    new = importer_lines.staged_values(cur, name, fields, "s", "t")
    preview = [] if not counts.get("update") else cur.execute(
        f"SELECT p.line, p.record_id, t.version, {', '.join(f't.{n}' for n in fields)},"
        f" {', '.join(new)}{dated} FROM (SELECT * FROM {name}"
        f" WHERE action = 'update' ORDER BY line LIMIT $preview) p"
        f" JOIN {name}_c s ON s.line = p.line JOIN {table} t ON t.id = p.record_id"
        " ORDER BY p.line", {"preview": PREVIEW_ROWS}).fetchall()
    return counts, rejected, preview


def _match(cur, user: User, entity: records.Entity, name: str, mode: str, key: str,
           fields: list[str], pg: bool = False) -> dict:
    """The checked rows ({name}_c) matched by key to the records the user sees, into table
    {name} (line, record_id, the record's version, dup_of, action); the counts by action.
    pg: the records are pg_snapshot's copies of PostgreSQL's ({name}_t, {name}_tk<field>)."""
    table = f"{name}_t" if pg else entity.table
    where, visible = records.visible(entity, user)
    sql = (f"CREATE TABLE {name}_e AS SELECT lower(CAST(t.{key} AS VARCHAR)) AS k,"
           f" min(t.id) AS id FROM {table} t WHERE {where} AND t.{key} IS NOT NULL GROUP BY 1")
    cur.execute(sql, _used(visible, sql))
    from crm import importer_lines  # deals: the file's lines replace theirs (an update too)

    new = importer_lines.staged_values(cur, name, fields, "s", "t")
    differs = " OR ".join(_differs_sql(entity.spec[n], f"t.{n}", v)
                          for n, v in zip(fields, new)) or "false"
    # _check: a field the update would keep (a contact's customer) given another value
    kept = " OR ".join(_differs_sql(entity.spec[n], f"t.{n}", f"s.f_{n}")
                       for n in kept_on_update(entity) if n in fields) or "false"
    lines_join, lines_differ = importer_lines.match_sql(cur, name, f"{name}_e") \
        if entity.table == "deals" else ("", "")
    unmatched = ("'reject'" if mode == "update"
                 else "CASE WHEN s.bad THEN 'reject' ELSE 'create' END")
    late, closes = "false", "false"  # a deal's close date from the file (_close_date)
    if entity.table == "deals" and not pg and "x_closed_on" in {
            r[0] for r in cur.execute(f"SELECT * FROM {name}_c LIMIT 0").description}:
        late, closes = close_date_sql("s", "t", "stage_id" in fields)
    cur.execute(
        f"CREATE TABLE {name} AS SELECT s.line, e.id AS record_id, t.version,"
        " CASE WHEN s.line > d.first THEN d.first END AS dup_of,"
        " CASE WHEN s.line > d.first THEN 'reject'"
        f" WHEN e.id IS NULL THEN {unmatched} WHEN s.bad_u OR {kept} OR {late} THEN 'reject'"
        f" WHEN {differs}{lines_differ} OR {closes} THEN 'update' ELSE 'skip' END AS action"
        f" FROM {name}_c s LEFT JOIN {name}_d d ON d.k = s.k LEFT JOIN {name}_e e ON e.k = s.k"
        f" LEFT JOIN {table} t ON t.id = e.id{lines_join}")
    cur.execute(f"DROP TABLE {name}_e")
    for n in [n for n in entity.unique if n in fields]:
        # _check_unique: among the rows to create or update, and the live records (not the
        # row's own): the first row of a value keeps it, the others are rejected
        v, acts = f"lower(c.f_{n})", "a.action IN ('create', 'update')"
        taken = (f"{name}_tk{n}" if pg else f"(SELECT lower({n}) AS v, min(id) AS id FROM"
                 f" {table} WHERE deleted_at IS NULL AND {n} IS NOT NULL GROUP BY 1)")
        first = f"min(a.line) FILTER (WHERE {acts} AND {v} IS NOT NULL) OVER (PARTITION BY {v})"
        cur.execute(
            f"CREATE TABLE {name}_x AS SELECT a.* EXCLUDE (action), CASE WHEN {acts} AND {v} IS"
            f" NOT NULL AND a.line > {first} THEN {first} END AS u_{n}_first, CASE WHEN {acts}"
            f" AND {v} IS NOT NULL AND tk.id IS DISTINCT FROM a.record_id THEN tk.id END"
            f" AS u_{n}_id, CASE WHEN {acts} AND {v} IS NOT NULL AND (a.line > {first} OR"
            f" (tk.id IS NOT NULL AND tk.id IS DISTINCT FROM a.record_id)) THEN 'reject'"
            f" ELSE a.action END AS action FROM {name} a JOIN {name}_c c"
            f" ON c.line = a.line LEFT JOIN {taken} tk ON tk.v = {v}")
        cur.execute(f"DROP TABLE {name}")
        cur.execute(f"ALTER TABLE {name}_x RENAME TO {name.split('.')[1]}")
    return dict(cur.execute(f"SELECT action, count(*) FROM {name} GROUP BY action")
                .fetchall())


def close_date_sql(s: str, t: str, staged_stage: bool) -> tuple[str, str]:
    """_close_date in SQL over a staged row s (x_closed_on, f_stage_id) and its deal t: (the
    file's close date of a move into a won or lost stage before the deal's latest stage
    change: rejected; a close date the update writes)."""
    closed = "(SELECT id FROM stages WHERE kind <> 'open')"
    day = f"CAST({s}.x_closed_on AS DATE)"
    moves = (f"({s}.f_stage_id IS DISTINCT FROM {t}.stage_id AND {s}.f_stage_id IN {closed})"
             if staged_stage else "false")
    stays = (f"({s}.f_stage_id IS NOT DISTINCT FROM {t}.stage_id)" if staged_stage else "true")
    late = (f"({s}.x_closed_on IS NOT NULL AND {moves} AND {day} < CAST((SELECT"
            f" max(h.changed_at) FROM deal_stage_history h WHERE h.deal_id = {t}.id) AS DATE))")
    closes = (f"({s}.x_closed_on IS NOT NULL AND {stays} AND {t}.stage_id IN {closed}"
              f" AND {day} IS DISTINCT FROM {t}.closed_on)")
    return late, closes


def _differs_sql(spec: Field, old: str, new: str) -> str:
    """records._differs in SQL: an empty text and a missing one are the same."""
    if spec.type in ("text", "longtext", "email", "phone", "choice"):
        return (f"({old} IS DISTINCT FROM {new} AND NOT (coalesce({old}, '') = ''"
                f" AND coalesce({new}, '') = ''))")
    return f"({old} IS DISTINCT FROM {new})"


def _fast_changes_plan(db: Database, user: User, entity: records.Entity, source: Source,
                       mapping: dict, mode: str, key: str, specs: dict, converters: dict,
                       notes: list, counts: dict, rejected: list, preview: list) -> Plan:
    """The dry run of a set-based update or upsert: the rejected rows worded as the row path
    words them (rows it would take after all keep its verdict), the first updates with their
    changes, and counts of the rest."""
    fields = [n for n in converters if n in specs]  # (not a deal's dates or product lines)
    if entity.table == "deals" and mode != "create" and "amount" not in fields \
            and "product_lines" in converters:  # priced by the lines (_fast_plan's priced)
        fields.append("amount")
    ids = sorted({r[2] for r in rejected if r[2] is not None})
    current = {}
    where, visible = records.visible(entity, user)
    for start in range(0, len(ids), 1000):
        names = {f"i{n}": v for n, v in enumerate(ids[start:start + 1000])}
        for r in db.query(f"SELECT t.* FROM {entity.table} t WHERE {where} AND t.id IN"
                          f" ({', '.join('$' + n for n in names)})", {**visible, **names}):
            current[r["id"]] = r
    rows, contacts, lost, closed = [], None, set(), set()
    if entity.table == "deals":  # _check: a lost stage needs a lost reason
        lost = {r["id"] for r in db.query("SELECT id FROM stages WHERE kind = 'lost'")}
        closed = {r["id"] for r in db.query("SELECT id FROM stages WHERE kind <> 'open'")}
    if entity.table == "deals" and "contact_id" in converters:  # _check: the contact's customer
        from crm import importer_deals

        _h, index, found = converters["contact_id"]
        contacts = importer_deals.contact_customers(db, [
            found.get(cells[index], (None,))[0] for _l, _d, _r, *cells in rejected
            if cells[index] is not None])
    width, unique = len(source.headers), [n for n in entity.unique if n in fields]
    # a deal's close date from the file (_close_date): its column and the deals' latest moves
    close_header = next((h for h in source.headers if mapping.get(h) == "closed_on"), None) \
        if entity.table == "deals" else None
    last_moves = _last_moves(db, {i: {"id": i} for i in ids}) if close_header else {}
    for line, dup_of, record_id, *cells in rejected:
        cells, taken = cells[:width], cells[width:]
        if dup_of is not None or record_id is None and mode == "upsert":
            row = _fast_row(user, entity, specs, converters, key, line, dup_of, list(cells),
                            lost, closed, contacts)
        else:
            row = _cells_row(specs, converters, line, list(cells))
            row.action = "update" if record_id is not None else "reject"
            if record_id is None:
                row.errors[key] = _("no record with this {field}").format(
                    field=specs[key].shown_label)
            else:
                row.record_id, row.version = record_id, current[record_id]["version"]
                if not row.errors:
                    _check(user, entity, row, specs, current[record_id], lost, closed,
                           contacts)
                if close_header and not row.errors and row.action in ("update", "skip"):
                    _close_date(row, current[record_id], last_moves, closed, close_header)
            if row.errors:
                row.action = "reject"
        for i, n in enumerate(unique):  # _check_unique's words, where SQL found it
            first, other = taken[2 * i:2 * i + 2]
            label = specs[n].shown_label
            if row.action in ("create", "update") and first is not None:
                row.errors[label] = _("the same {field} as row {line}").format(
                    field=label, line=first)
            elif row.action in ("create", "update") and other is not None:
                row.errors[label] = _("{entity} #{id} already has this {field}").format(
                    entity=_(entity.label), id=other, field=label)
            if row.errors:
                row.action = "reject"
        rows.append(row)
    for found in preview:
        line, record_id, version = found[:3]
        old, new = found[3:3 + len(fields)], found[3 + len(fields):3 + 2 * len(fields)]
        values = {n: (None if v is None else convert(specs[n], v)) for n, v in zip(fields, new)}
        if entity.table == "deals" and (values.get("stage_id") or 0) < 0:
            values["stage_id"] = 0  # a stage to add, as _check has it
        changes = {n: (o, values[n]) for n, o in zip(fields, old)
                   if records._differs(o, values[n])}
        row = Row(line=line, action="update" if changes else "skip", values=values,
                  record_id=record_id, version=version, changes=changes)
        if close_header and len(found) > 3 + 2 * len(fields):
            stage_now, closed_now, closed_file = found[3 + 2 * len(fields):]
            if closed_file is not None:
                row.extra["closed_on"] = _day(closed_file)
            _close_date(row, {"id": record_id, "stage_id": stage_now, "closed_on": closed_now},
                        {}, closed, close_header)
        rows.append(row)
    # rows SQL rejected but the row path takes are counted by their own verdict (in rows)
    staged = {"create": counts.get("create", 0), "skip": counts.get("skip", 0),
              "update": counts.get("update", 0) - len(preview)}
    notes.append(_("Checked set-based; the import writes the rows set-based too (row by row "
                   "while automation rules watch these records)."))
    return Plan(entity, source, mapping, mode, key, rows, notes, staged_counts=staged,
                replan=True)


def _fast_row(user: User, entity: records.Entity, specs: dict, converters: dict,
              key: str | None, line: int, dup_of: int | None, cells: list,
              lost: set = frozenset(), closed: set = frozenset(),
              contacts: dict | None = None) -> Row:
    """A rejected row worded as the row path words it, from the file's cells."""
    row = _cells_row(specs, converters, line, cells)
    errors = row.errors
    if dup_of is not None:
        row.action, row.errors = "reject", {**errors, key: _(
            "the same {field} as row {line}").format(field=specs[key].shown_label, line=dup_of)}
        return row
    if not errors:
        _check(user, entity, row, specs, None, lost, closed, contacts)
    if row.errors:
        row.action = "reject"
    return row


def _cells_row(specs: dict, converters: dict, line: int, cells: list) -> Row:
    """The file's cells of a row converted as the row path converts them (a new record's
    row, with the cells' errors by column)."""
    cells = ["" if c is None else c for c in cells]
    values, errors, extra = {}, {}, {}
    for field_name, (header, index, found) in converters.items():
        text = cells[index]
        if _missing(text):
            value, error = None, None
        elif found is not None:
            value, error = found.get(text, (None, None))
        else:
            column = coerce(specs[field_name], [text])
            value, error = column.values[0], column.errors.get(0)
        if field_name in specs:
            values[field_name] = value
        elif value is not None:  # a deal's dates or product lines, as plan() keeps them
            extra[field_name] = value
        if error:
            errors[header] = error
    if extra.get("product_lines") and values.get("amount") is None:  # as plan() prices it
        values["amount"] = sum(x["quantity"] * x["unit_price"]
                               for x in extra["product_lines"]).quantize(Decimal("0.01"))
    return Row(line=line, action="create", values=values, errors=errors, cells=cells,
               extra=extra)


def _fast_write(cur, user: User, p: Plan, import_id: int) -> None:
    """The staged rows to create, with their import_records and audit_log rows: one
    INSERT ... SELECT each; ids drawn from the table's sequence in the file's order."""
    writer = getattr(p, "_fast_writer", None)  # deals: crm/importer_deals.py
    if writer is not None:
        return writer(cur, user, p, import_id)
    n = p.staged_counts.get("create", 0)
    if not n:
        return
    entity, table = p.entity, p.entity.table
    constants = getattr(p, "_constants", {})
    where, seq = getattr(p, "_write", ("action = 'create'", "seq"))
    staged = p.staged
    if dialect.of(cur) != dialect.DUCKDB:  # the rows to write, into this transaction
        staged, where, seq = _to_postgresql(cur, p, staged, where, seq), "true", "seq"
    # every row's id given, not left to the sequence's DEFAULT: with nextval in it DuckDB
    # inserts on one thread (the audit rows took 1.9 s instead of 1.2 s a million)
    first = _draw_ids(cur, f"{table}_id_seq", n)
    first_audit = _draw_ids(cur, "audit_log_id_seq", n)
    now = datetime.now()
    params = {"first": first - 1, "now": now, "by": user.id or None}
    cols, values = ["id"], [f"$first + {seq}"]
    for spec in entity.editable:
        if spec.name in constants:
            params[f"k_{spec.name}"] = constants[spec.name]
            value = f"$k_{spec.name}"
            if spec.name == "owner_id" and constants[spec.name] is None:
                value = "$by"
        else:
            value = f"f_{spec.name}"
            if spec.name == "owner_id":
                value = "coalesce(f_owner_id, $by)"
        cols.append(spec.name)
        values.append(value)
    cols += ["created_at", "updated_at", "created_by", "updated_by"]
    values += ["$now", "$now", "$by", "$by"]
    from crm import importer_recheck, importer_refs

    # a record a row names trashed since the dry run, an owner no longer active: the row
    # path's refusal
    importer_recheck.refuse(cur, user, p, staged, where, import_id)
    refused = importer_refs.refusal(cur, entity, staged, where)
    if refused:
        raise ImportFileError(refused)
    stored = importer_refs.written(entity, user, dict(zip(cols, values)), params)
    cols, values = list(stored), list(stored.values())
    cur.execute(f"INSERT INTO {table} ({', '.join(cols)}) SELECT {', '.join(values)}"
                f" FROM {staged} WHERE {where}", _used(params, ", ".join(values)))
    # one import_records row a run of consecutive lines (their ids are consecutive too)
    cur.execute("INSERT INTO import_records (import_id, line, record_id, action, before,"
                " version_after, span) SELECT $i, min(line), $first + min(" + seq + "),"
                f" 'create', NULL, 1, count(*) FROM {staged} WHERE {where}"
                f" GROUP BY line - {seq} ORDER BY min(line)",
                {"i": import_id, "first": first - 1})
    # each new record's audit row names the import and its user, without repeating the
    # values: they are the record's first version (later audit rows hold every change since),
    # and writing them again as JSON was a third of a million-row import's time
    cur.execute("INSERT INTO audit_log (id, occurred_at, user_id, username, entity, record_id,"
                f" action, changes, import_id) SELECT $own + {seq}, $now, $by, $uname, $table,"
                f" $first + {seq}, 'create', NULL, $i FROM {staged} WHERE {where}",
                {"now": now, "by": user.id or None, "uname": user.username, "table": table,
                 "first": first - 1, "i": import_id, "own": first_audit - 1})

    importer_refs.after(cur, entity, staged, where, params)
    if rules.watched(cur, table):  # automation rules on the new records (one cached lookup)
        ids = [r[0] for r in cur.execute(f"SELECT $first + {seq} FROM {staged} WHERE {where}"
                                         f" ORDER BY {seq}", {"first": first - 1}).fetchall()]
        rules.on_created(cur, user, entity, ids)


# PostgreSQL's types of the stage's columns (by DuckDB's type name's start)
_PG_TYPES = (("VARCHAR", "TEXT"), ("BOOLEAN", "BOOLEAN"), ("DATE", "DATE"),
             ("TIMESTAMP", "TIMESTAMP"), ("DECIMAL", "NUMERIC"), ("DOUBLE", "DOUBLE PRECISION"),
             ("FLOAT", "DOUBLE PRECISION"), ("HUGEINT", "NUMERIC"), ("BIGINT", "BIGINT"),
             ("INTEGER", "BIGINT"), ("SMALLINT", "BIGINT"), ("TINYINT", "BIGINT"),
             ("UBIGINT", "NUMERIC"), ("UINTEGER", "BIGINT"))


def _to_postgresql(cur, p: Plan, staged: str, where: str, seq: str) -> str:
    """The stage's rows to write (their line, order and field values) in a TEMP table of the
    import's PostgreSQL transaction; returns its name. Its seq numbers the rows 1, 2, ... as
    the stage's does."""
    stage = _stage_cursor(p._db)
    try:
        cols = [r[0] for r in stage.execute(f"SELECT * FROM {staged} LIMIT 0").description]
    finally:
        stage.close()
    picked = ["line", f"{seq} AS seq"] + [c for c in cols if c.startswith("f_")]
    temp = "crm_import_rows"
    _copy_to_postgresql(cur, p._db, f"SELECT {', '.join(picked)} FROM {staged}"
                                    f" WHERE {where} ORDER BY line", temp)
    return temp


def _copy_to_postgresql(cur, db: Database | None, query: str, temp: str) -> None:
    """The rows of a query of the stage into a new TEMP table temp of cur's PostgreSQL
    transaction (dropped at its end), by COPY of Arrow's CSV (the demo loader's way)."""
    import pyarrow as pa

    stage = _stage_cursor(db)
    try:
        described = stage.execute(f"DESCRIBE {query}").fetchall()
        types = [next((t for k, t in _PG_TYPES if str(r[1]).upper().startswith(k)), "TEXT")
                 for r in described]
        cur.execute(f"DROP TABLE IF EXISTS pg_temp.{temp}")
        cur.execute(f"CREATE TEMPORARY TABLE {temp} ("
                    + ", ".join(f'"{r[0]}" {t}' for r, t in zip(described, types))
                    + ") ON COMMIT DROP")
        for batch in stage.sql(query).to_arrow_reader(dialect._CSV_CHUNK):
            dialect._copy_arrow(cur._cur, temp, pa.Table.from_batches([batch]))
    finally:
        stage.close()


def _draw_ids(cur, sequence: str, n: int, tries: int = 5) -> int:
    """The first of n consecutive new values of the sequence (the rows' ids: first, first + 1,
    ...). Drawn again, leaving a gap, when another writer drew one of them meanwhile."""
    for _attempt in range(tries):
        first = cur.execute(f"SELECT nextval('{sequence}')").fetchone()[0]
        rows = ("range($more)" if dialect.of(cur) == dialect.DUCKDB
                else "generate_series(1, $more)")
        last = first if n == 1 else cur.execute(
            f"SELECT max(nextval('{sequence}')) FROM {rows}", {"more": n - 1}
        ).fetchone()[0]
        if last - first == n - 1:  # nobody else's value among them
            return first
    raise ImportFileError(_("The database is too busy to number the new records; try again."))


def _used(params: dict, sql: str) -> dict:
    """The parameters the SQL names (DuckDB refuses extra ones)."""
    named = set(re.findall(r"\$(\w+)", sql))
    return {k: v for k, v in params.items() if k in named}


def _drop_quietly(db: Database, name: str) -> None:
    try:
        cur = _stage_cursor(db)
        try:
            cur.execute(f"DROP TABLE IF EXISTS {name}")
        finally:
            cur.close()
    except Exception:  # noqa: BLE001 - the connection may be closed already
        pass


def discard(db: Database, import_plan: Plan) -> None:
    """Frees a fast plan's staging table (after execute, or when the plan is abandoned)."""
    for table in getattr(import_plan, "_staged_more", ()):  # deals: their product lines
        _drop_quietly(db, table)
    if import_plan.staged:
        _drop_quietly(db, import_plan.staged)
        import_plan.staged = None
    if import_plan.staged_updates:
        from crm import importer_updates

        importer_updates.drop(db, import_plan.staged_updates)
        import_plan.staged_updates = None
