"""CSV and Excel import into any spec-driven entity: read the file robustly, propose a column
mapping, coerce each column by its field spec, resolve references by name, plan (dry run), then
write every valid row in one transaction that can be undone.

The same functions serve the Import page and `python -m crm import`. Rows go through the
entities' own insert and update commands, so validation, permissions and audit are those of
the forms; the audit rows carry the import's id."""
from __future__ import annotations

import csv
import difflib
import io
import json
import re
from dataclasses import dataclass, field
from datetime import date, datetime
from decimal import Decimal, InvalidOperation

from crm import audit, i18n, records
from crm.auth import PermissionDenied, User, require
from crm.db import Database
from crm.fields import Field, ValidationError, validate
from crm.i18n import N_, gettext as _

MAX_BYTES = 200 * 1024 * 1024
MODES = ("create", "upsert", "update")
MISSING = {"", "null", "none", "n/a", "na", "-", "—", "nan", "#n/a"}
TRUE = {"1", "true", "yes", "y", "t", "x", "✓", "ja", "taip", "bale", "بله", "آری", "si", "oui"}
FALSE = {"0", "false", "no", "n", "f", "ne", "nein", "non", "خیر", "نه"}


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

    def column(self, index: int) -> list[str]:
        return [row[index] for row in self.rows]


def read(data: bytes, filename: str, encoding: str | None = None,
         delimiter: str | None = None, sheet: str | None = None) -> Source:
    """A table from CSV/TSV bytes (encoding and delimiter detected unless given) or an xlsx
    workbook (its first sheet unless one is named)."""
    if not data:
        raise ImportFileError(_("The file is empty."))
    if len(data) > MAX_BYTES:
        raise ImportFileError(_("The file is larger than {size} MB; split it or use the "
                                "command line.").format(size=MAX_BYTES // 1024 // 1024))
    if data[:4] == b"PK\x03\x04":
        return _read_xlsx(data, filename, sheet)
    text, found_encoding = _decode(data, encoding)
    if "\x00" in text:
        raise ImportFileError(_("This does not look like a text (CSV) file: it holds binary "
                                "data."))
    sep = delimiter or _delimiter(text)
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

    return load_workbook(io.BytesIO(data), read_only=True).sheetnames


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
    "title": ("job title", "position", "role", "deal name", "opportunity name", "deal title",
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
}


def _norm(text: str) -> str:
    return re.sub(r"[^0-9a-z\u0600-\u06ff\u0100-\u017f]+", " ", str(text).lower()).strip()


def importable(entity: records.Entity) -> list[Field]:
    return [f for f in entity.fields if f.editable]


def propose_mapping(entity: records.Entity, headers: list[str]) -> dict[str, str | None]:
    """{column: field name or None}: by field name, English or translated label, then
    synonyms of other CRMs' exports; each field is used once."""
    specs = importable(entity)
    names = {}
    for f in specs:
        for label in (f.name, f.label, f.shown_label, *SYNONYMS.get(f.name, ())):
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
    raise ValueError(_("{label}: {value} is not one of the choices").format(
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
    if spec.type == "user":
        found = {}
        for column in ("name", "email", "username"):
            found.update(_lookup(db, f"SELECT id, {column} AS k FROM users WHERE active"))
        return found
    if spec.ref == "stages":
        from crm import pipelines

        pid = pipeline_id or pipelines.default_pipeline_id(db)
        return _lookup(db, "SELECT id, name AS k FROM stages WHERE pipeline_id = $p"
                           " AND deleted_at IS NULL", {"p": pid})
    if spec.ref in records.REF_LABELS:
        table = spec.ref
        from crm import customers, deals, leads

        entity = {"customers": customers.CUSTOMERS, "contacts": customers.CONTACTS,
                  "deals": deals.DEALS, "leads": leads.LEADS}.get(table)
        if entity is None:
            return _lookup(db, f"SELECT id, {records.REF_LABELS[table].format(a='t')} AS k"
                               f" FROM {table} t")
        where, params = records.visible(entity, user)
        found = _lookup(db, f"SELECT t.id, {entity.title_sql} AS k FROM {table} t"
                            f" WHERE {where}", params)
        if table == "contacts":
            found.update(_lookup(db, f"SELECT t.id, t.email AS k FROM contacts t WHERE {where}",
                                 params))
        return found
    return {}


def resolve(db: Database, user: User, spec: Field, texts: list[str],
            pipeline_id: int | None = None, create_missing: bool = False,
            created: dict | None = None) -> Column:
    """Names to ids; an unknown name is an error with the nearest known names, or (stages,
    with create_missing) a stage to add to the pipeline."""
    known = _resolver(db, user, spec, pipeline_id)
    column = Column(spec, [None] * len(texts))
    for i, text in enumerate(texts):
        if _missing(text):
            continue
        key = str(text).strip().lower()
        if key.isdigit() and spec.type == "ref" and int(key) in known.values():
            column.values[i] = int(key)
        elif key in known:
            column.values[i] = known[key]
        elif create_missing and spec.ref == "stages":
            column.values[i] = ("new stage", str(text).strip())
            if created is not None:
                created.setdefault("stages", set()).add(str(text).strip())
        else:
            close = difflib.get_close_matches(key, list(known), n=1, cutoff=0.75)
            message = _("{label}: no {value} here").format(label=spec.shown_label,
                                                          value=repr(str(text).strip()))
            if close:
                message += " " + _("Did you mean {suggestion}?").format(suggestion=close[0])
            column.errors[i] = message
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

    def count(self, action: str) -> int:
        return sum(1 for r in self.rows if r.action == action)

    @property
    def counts(self) -> dict[str, int]:
        return {a: self.count(a) for a in ACTIONS}


def plan(db: Database, user: User, entity: records.Entity, source: Source, mapping: dict,
         mode: str = "create", key: str | None = None, create_missing: bool = False,
         pipeline_id: int | None = None) -> Plan:
    """What the import would do, row by row; nothing is written."""
    require(user, "create")
    if mode not in MODES:
        raise ValueError(f"mode must be one of {MODES}")
    specs = {f.name: f for f in importable(entity)}
    unknown = [v for v in mapping.values() if v and v not in specs]
    if unknown:
        raise ImportFileError(_("These are not fields of {entity}: {fields}").format(
            entity=_(entity.plural), fields=", ".join(unknown)))
    if mode != "create" and not key:
        raise ImportFileError(_("Updating needs a key column mapped to a field (e.g. email)."))
    if key and (key not in specs or key not in mapping.values()):
        raise ImportFileError(_("The key {field} needs a column of the file mapped to it.")
                              .format(field=specs[key].shown_label if key in specs else key))
    columns, notes, created = {}, [], {}
    for index, header in enumerate(source.headers):
        name = mapping.get(header)
        if not name:
            continue
        spec, texts = specs[name], source.column(index)
        if spec.type in ("user", "ref"):
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
    rows, seen = [], {}
    for i in range(len(source.rows)):
        values = {name: column.values[i] for name, (header, column) in columns.items()}
        errors = {header: column.errors[i] for name, (header, column) in columns.items()
                  if i in column.errors}
        row = Row(line=i + 2, action="create", values=values, errors=errors)
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
        if row.action != "reject" and not errors and row.action != "skip":
            _check(user, entity, row, specs, match)
        if errors and row.action != "skip":
            row.action = "reject"
        rows.append(row)
    return Plan(entity, source, mapping, mode, key, rows, notes,
                new_stages=created.get("stages", set()), pipeline_id=pipeline_id)


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
            f" IN ({', '.join('$' + n for n in names)})", {**params, **names})
        for r in rows:
            found.setdefault(_key_text(r[key]), r)
    return found


def _check(user: User, entity: records.Entity, row: Row, specs: dict,
           current: dict | None) -> None:
    """Validation as the form does it: a new row whole, an update on the fields it brings."""
    values = {k: v for k, v in row.values.items() if not isinstance(v, tuple)}
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
            if not row.changes:
                row.action = "skip"
    except ValidationError as exc:
        row.errors.update({specs[k].shown_label if k in specs else k: v
                           for k, v in exc.errors.items()})


# --- writing ---------------------------------------------------------------------------------

def execute(db: Database, user: User, import_plan: Plan) -> int:
    """Writes the plan's create and update rows in one transaction (all or none); returns the
    import's id. Refusals found only now (a permission, a changed record) reject the whole
    import with the row's line."""
    p = import_plan
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
        for row in p.rows:
            if row.action not in ("create", "update"):
                continue
            values = {k: (stage_ids[v[1]] if isinstance(v, tuple) else v)
                      for k, v in row.values.items()}
            try:
                if row.action == "create":
                    record_id = _insert(cur, user, p.entity, values)
                    before = None
                else:
                    changed = {k: values[k] for k in row.changes}
                    before = {k: old for k, (old, _new) in row.changes.items()}
                    records.update_in(cur, user, p.entity, row.record_id, changed, row.version)
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
        cur.execute("UPDATE audit_log SET import_id = $i WHERE id > $first",
                    {"i": import_id, "first": first_audit})
        audit.record(cur, user, "imports", import_id, "import",
                     {"rows": [None, p.count("create") + p.count("update")]})
    return import_id


def _insert(cur, user: User, entity: records.Entity, values: dict) -> int:
    """The entity's own insert command inside the import's transaction."""
    if entity.table == "deals":
        from crm import deals

        return deals.insert_deal(cur, user, values)
    if entity.table == "activities":
        from crm import activities

        return activities.insert_activity(cur, user, values)
    return records.insert(cur, user, entity, values)


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
    from crm import customers, deals, leads

    entities = {e.table: e for e in (leads.LEADS, customers.CUSTOMERS, customers.CONTACTS,
                                     deals.DEALS)}
    with db.transaction() as cur:
        found = cur.execute("SELECT entity, created_by, undone_at FROM imports WHERE id = $i",
                            {"i": import_id}).fetchone()
        if found is None:
            raise records.NotFound(_("Import #{id} does not exist").format(id=import_id))
        table, owner, undone_at = found
        require(user, "edit", {"owner_id": owner})
        if undone_at is not None:
            raise ValidationError({"import": _("This import was undone already.")})
        entity = entities[table]
        done, refused = 0, []
        items = cur.execute("SELECT record_id, line, action, before, version_after FROM"
                            " import_records WHERE import_id = $i ORDER BY id DESC",
                            {"i": import_id}).fetchall()
        for record_id, line, action, before, version_after in items:
            current = cur.execute(f"SELECT version, deleted_at FROM {table} WHERE id = $id",
                                  {"id": record_id}).fetchone()
            if current is None or current[0] != version_after or current[1] is not None:
                refused.append({"line": line, "record_id": record_id,
                                "reason": _("changed since the import")})
                continue
            if action == "create":
                cur.execute(f"UPDATE {table} SET deleted_at = $t, deleted_by = $by,"
                            " version = version + 1 WHERE id = $id",
                            {"t": datetime.now(), "by": user.id or None, "id": record_id})
                audit.record(cur, user, table, record_id, "delete",
                             {"import_undone": [None, import_id]})
            else:
                old = {k: v[0] for k, v in json.loads(before).items()}
                records.update_in(cur, user, entity, record_id, old, version_after)
            done += 1
        cur.execute("UPDATE imports SET undone_at = $t, undone_by = $by WHERE id = $i",
                    {"t": datetime.now(), "by": user.id or None, "i": import_id})
    return {"undone": done, "refused": refused}


def rejected_csv(import_plan: Plan) -> bytes:
    """The rejected rows as they were in the file, with a column saying why, to fix and
    import again."""
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow([_("row"), _("problem"), *import_plan.source.headers])
    for row in import_plan.rows:
        if row.action == "reject":
            writer.writerow([row.line, "; ".join(f"{k}: {v}" for k, v in row.errors.items()),
                             *[records._csv_safe(c) for c in import_plan.source.rows[row.line - 2]]])
    return out.getvalue().encode("utf-8-sig")
