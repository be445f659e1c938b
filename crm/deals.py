"""Deals: opportunities moving through a pipeline's stages, with exact stage history."""
from __future__ import annotations

from datetime import date, datetime, timedelta
from decimal import Decimal

from crm import audit, dialect, pipelines, records, rules, stage_reach, stage_spans
from crm.auth import User, require
from crm.db import Database, retried, rows
from crm.fields import Field, ValidationError, validate
from crm.i18n import gettext as _
from crm.leads import SOURCES

CURRENCIES = ("USD", "EUR", "GBP", "IRR", "AED", "CAD", "TRY")
LOST_REASONS = ("price", "competitor", "no_budget", "no_decision", "timing", "product_fit",
                "went_silent", "other")

FIELDS = [
    Field("title", "Title", required=True, searchable=True, in_list=True, section="Deal"),
    Field("customer_id", "Customer", "ref", ref="customers", in_list=True, section="Deal"),
    Field("contact_id", "Contact", "ref", ref="contacts", section="Deal"),
    Field("owner_id", "Owner", "user", filter=True, section="Deal"),
    Field("stage_id", "Stage", "ref", ref="stages", required=True, create_only=True,
          filter=True, in_list=True, section="Deal",
          help="Later moves go through the board or 'Move to', which keep the stage history"),
    Field("amount", "Amount", "money", min_value=0, max_value=1e13, in_list=True,
          section="Value"),
    Field("currency", "Currency", "choice", required=True, choices=CURRENCIES, default="USD",
          in_list=True, section="Value"),
    Field("expected_close_date", "Expected close", "date", in_list=True, filter=True,
          section="Value"),
    Field("probability", "Probability % (empty: the stage's)", "integer", min_value=0,
          max_value=100, section="Value"),
    Field("forecast_category", "Forecast category (empty: the stage's)", "choice",
          choices=pipelines.FORECAST_CATEGORIES, section="Value"),
    Field("source", "Source", "choice", choices=SOURCES, filter=True, section="Value"),
    Field("next_step", "Next step", section="Follow-up"),
    Field("notes", "Notes", "longtext", section="Follow-up"),
    Field("lost_reason", "Lost reason", "choice", choices=LOST_REASONS, section="Outcome"),
    Field("lost_to_competitor", "Lost to competitor", section="Outcome",
          help="Matched to the competitor records by name (any case); a new name adds a "
               "competitor"),
    Field("competitor_id", "Competing against", "ref", ref="competitors", section="Outcome",
          help="The main competitor in this deal, won or lost: the win rate against each "
               "competitor counts these"),
    # the competitor record lost_to_competitor names, kept by the commands
    Field("lost_to_competitor_id", "Lost to (competitor record)", "ref", ref="competitors",
          editable=False, section="Outcome"),
]



# --- writes --------------------------------------------------------------------------------

@retried
def create_deal(db: Database, user: User, values: dict) -> int:
    with db.transaction() as cur:
        return insert_deal(cur, user, values)


def insert_deal(cur, user: User, values: dict) -> int:
    clean = validate(DEALS.fields, values)
    stage = pipelines.get_stage(cur, clean["stage_id"])
    if stage is None:
        raise ValidationError({"stage_id": _("Choose a stage")})
    _check_links(cur, user, clean)
    if stage["kind"] == "lost" and not clean.get("lost_reason"):
        raise ValidationError({"lost_reason": _("A lost deal needs a lost reason")})
    now = datetime.now()
    derived = {"pipeline_id": stage["pipeline_id"], "stage_entered_at": now,
               "closed_on": date.today() if stage["kind"] != "open" else None,
               **_rival(cur, user, clean.get("lost_to_competitor"))}
    deal_id = records.insert(cur, user, DEALS, values, derived)
    _history(cur, user, deal_id, None, stage, clean.get("amount"), clean.get("probability"), now)
    return deal_id


@retried
def update_deal(db: Database, user: User, deal_id: int, values: dict, expected_version: int,
                base: dict | None = None) -> dict:
    with db.transaction() as cur:
        return update_deal_in(cur, user, deal_id, values, expected_version, base)


def update_deal_in(cur, user: User, deal_id: int, values: dict, expected_version: int | None,
                   base: dict | None = None) -> dict:
    """update_deal inside a caller's transaction (the importer's)."""
    merged = {**_current(cur, deal_id), **values}
    _check_links(cur, user, validate(DEALS.fields, {k: merged.get(k) for k in
                                              ("customer_id", "contact_id", "title",
                                               "stage_id", "currency")}, partial=True))
    saved = records.update_in(cur, user, DEALS, deal_id, values, expected_version, base)
    return relink_competitor(cur, user, saved)


def relink_competitor(cur, user: User, deal: dict) -> dict:
    """After the deal's lost_to_competitor text changed: links it to the competitor record of
    that name (made when new); returns the deal as stored."""
    rival = _rival(cur, user, deal["lost_to_competitor"])
    if rival["lost_to_competitor_id"] == deal["lost_to_competitor_id"]:
        return deal
    cur.execute("UPDATE deals SET lost_to_competitor_id = $c, lost_to_competitor = $n"
                " WHERE id = $id", {"c": rival["lost_to_competitor_id"],
                                    "n": rival["lost_to_competitor"], "id": deal["id"]})
    audit.record(cur, user, "deals", deal["id"], "update", {"lost_to_competitor_id": (
        deal["lost_to_competitor_id"], rival["lost_to_competitor_id"])})
    return records.fetch(cur, DEALS, deal["id"])


def _rival(cur, user: User, name: str | None) -> dict:
    """The competitor record a typed competitor name stands for (made when new), and its
    name as the record spells it."""
    from crm import market

    rival = market.competitor_for_name(cur, user, name)
    if rival is None:
        return {"lost_to_competitor_id": None, "lost_to_competitor": None}
    spelled = cur.execute("SELECT name FROM competitors WHERE id = $id", {"id": rival}).fetchone()
    return {"lost_to_competitor_id": rival, "lost_to_competitor": spelled[0]}


def _current(cur, deal_id: int) -> dict:
    found = rows(cur, "SELECT customer_id, contact_id, title, stage_id, currency FROM deals"
                      " WHERE id = $id", {"id": deal_id})
    if not found:
        raise records.NotFound(_("Deal #{id} does not exist").format(id=deal_id))
    return found[0]


def _check_links(cur, user: User, clean: dict) -> None:
    """The customer must exist and be visible to the user; the contact must belong to it."""
    from crm.customers import CONTACTS, CUSTOMERS

    customer_id, contact_id = clean.get("customer_id"), clean.get("contact_id")
    if customer_id is not None:
        customer = records.fetch(cur, CUSTOMERS, customer_id)
        if customer is None or customer["deleted_at"] is not None:
            raise ValidationError({"customer_id": _("That customer does not exist")})
        require(user, "view", customer)
    if contact_id is not None:
        contact = records.fetch(cur, CONTACTS, contact_id)
        if contact is None or contact["deleted_at"] is not None:
            raise ValidationError({"contact_id": _("That contact does not exist")})
        if customer_id is not None and contact["customer_id"] != customer_id:
            raise ValidationError({"contact_id": _("The contact works for another customer")})
        require(user, "view", contact)


def delete_deal(db: Database, user: User, deal_id: int) -> None:
    records.delete(db, user, DEALS, deal_id)


def restore_deal(db: Database, user: User, deal_id: int) -> None:
    records.restore(db, user, DEALS, deal_id)


@retried
def move_deal(db: Database, user: User, deal_id: int, to_stage_id: int,
              lost_reason: str | None = None, competitor: str | None = None,
              expected_version: int | None = None) -> dict:
    """Moves a deal to a stage: permission, lost-reason rule, close date, stage history and audit
    in one transaction. The board, 'Move to', the importer and the CLI all come here."""
    with db.transaction() as cur:
        return move_deal_in(cur, user, deal_id, to_stage_id, lost_reason, competitor,
                            expected_version)


def move_deal_in(cur, user: User, deal_id: int, to_stage_id: int,
                 lost_reason: str | None = None, competitor: str | None = None,
                 expected_version: int | None = None, closed_on: date | None = None) -> dict:
    """move_deal inside a caller's transaction (the importer's). closed_on: a move into a won
    or lost stage on that day (an imported close date) instead of today: the deal closed on
    it, its history row and time in the stage from its start."""
    dialect.lock_row(cur, "deals", deal_id)  # moves from other servers wait: true history
    deal = records.fetch(cur, DEALS, deal_id)
    if deal is None or deal["deleted_at"] is not None:
        raise records.NotFound(_("Deal #{id} does not exist or is in the trash").format(
            id=deal_id))
    require(user, "edit", deal)
    if expected_version is not None and deal["version"] != expected_version:
        raise records.ConflictError(deal, [])
    source = pipelines.get_stage(cur, deal["stage_id"])
    target = pipelines.get_stage(cur, to_stage_id)
    if target is None:
        raise ValidationError({"stage_id": _("That stage does not exist")})
    if target["id"] == deal["stage_id"]:
        return deal
    changes = {"stage_id": (deal["stage_id"], target["id"])}
    sets = {"stage_id": target["id"], "pipeline_id": target["pipeline_id"],
            "probability": None, "forecast_category": None}
    if target["kind"] == "lost":
        reason = validate([f for f in FIELDS if f.name == "lost_reason"],
                          {"lost_reason": lost_reason})["lost_reason"]
        if not reason:
            raise ValidationError({"lost_reason": _("Say why the deal was lost")})
        rival = validate([f for f in FIELDS if f.name == "lost_to_competitor"],
                         {"lost_to_competitor": competitor})["lost_to_competitor"]
        sets.update(lost_reason=reason, **_rival(cur, user, rival))
    else:
        sets.update(lost_reason=None, lost_to_competitor=None, lost_to_competitor_id=None)
    today = date.today()
    closing = target["kind"] in ("won", "lost")
    sets["closed_on"] = (closed_on or today) if closing else None
    for name in ("lost_reason", "lost_to_competitor", "lost_to_competitor_id", "closed_on",
                 "probability", "forecast_category"):
        if deal[name] != sets[name]:
            changes[name] = (deal[name], sets[name])
    now = datetime.now()
    entered = closing_moment(cur, deal_id, closed_on) if closing and closed_on else now
    assigns = ", ".join(f"{k} = ${k}" for k in sets)
    cur.execute(
        f"UPDATE deals SET {assigns}, stage_entered_at = $entered, version = version + 1,"
        f" updated_at = $now, updated_by = $by WHERE id = $id",
        {**sets, "now": now, "entered": entered, "by": user.id or None, "id": deal_id},
    )
    # source None: the deal sat in a stage deleted meanwhile; history still names it
    _history(cur, user, deal_id, source or {"id": deal["stage_id"]}, target,
             deal["amount"], None, entered)
    audit.record(cur, user, "deals", deal_id, "move", changes)
    rules.on_changed(cur, user, DEALS, deal_id, changes)  # e.g. "moved to stage X"
    return records.fetch(cur, DEALS, deal_id)


def closing_moment(cur, deal_id: int, closed_on: date) -> datetime:
    """When a move closing a deal on an imported day is written in its history: that day's
    start, or just after the deal's latest stage change where that was on the same day (the
    history stays in order; an earlier day the importer refuses). CLOSING_MOMENT_SQL alike."""
    start = datetime.combine(closed_on, datetime.min.time())
    last = cur.execute("SELECT max(changed_at) FROM deal_stage_history WHERE deal_id = $id",
                       {"id": deal_id}).fetchone()[0]
    return max(start, last + timedelta(microseconds=1)) if last is not None else start


# closing_moment in SQL, for a closing date {day} of the deal {deal}
CLOSING_MOMENT_SQL = ("greatest(CAST({day} AS TIMESTAMP), (SELECT max(h.changed_at) + INTERVAL"
                      " '1 microsecond' FROM deal_stage_history h WHERE h.deal_id = {deal}))")


def move_all(cur, user: User, source: dict, target: dict) -> int:
    """Moves every deal of a stage (deleting the stage) in three set-based statements, with a
    history row and an audit entry for each deal. Not into a lost stage: each lost deal needs
    its own reason."""
    if target["kind"] == "lost":
        raise ValidationError({"move_deals_to": _(
            "Deals cannot be moved to a lost stage in bulk: each needs its own lost reason")})
    params = {"s": source["id"], "t": target["id"], "pipeline": target["pipeline_id"],
              "now": datetime.now(), "by": user.id or None, "p": target["probability"],
              "closed": date.today() if target["kind"] == "won" else None}
    moved = cur.execute("SELECT count(*) FROM deals WHERE stage_id = $s",
                        {"s": source["id"]}).fetchone()[0]
    watched = rules.watched(cur, "deals") and [r[0] for r in cur.execute(
        "SELECT id FROM deals WHERE stage_id = $s ORDER BY id", {"s": source["id"]}).fetchall()]
    cur.execute(
        "INSERT INTO deal_stage_history (deal_id, from_stage_id, to_stage_id, changed_at,"
        " changed_by, amount, probability) SELECT id, $s, $t, $now, $by, amount, $p"
        " FROM deals WHERE stage_id = $s",
        {k: params[k] for k in ("s", "t", "now", "by", "p")})
    stage_spans.refresh(cur, "SELECT id FROM deals WHERE stage_id = $s",
                        {"s": source["id"]})
    audit.record_many(cur, user, "deals", "SELECT id FROM deals WHERE stage_id = $s",
                      {"s": source["id"]}, "move", {"stage_id": (source["id"], target["id"])})
    cur.execute(
        "UPDATE deals SET stage_id = $t, pipeline_id = $pipeline, stage_entered_at = $now,"
        " probability = NULL, forecast_category = NULL, lost_reason = NULL,"
        " lost_to_competitor = NULL, lost_to_competitor_id = NULL, closed_on = $closed,"
        " version = version + 1,"
        " updated_at = $now, updated_by = $by WHERE stage_id = $s",
        {k: params[k] for k in ("s", "t", "pipeline", "now", "by", "closed")})
    # recounted in their new stage: the deals of the history rows written above
    stage_reach.refresh(cur, "SELECT deal_id FROM deal_stage_history WHERE from_stage_id = $s"
                        " AND to_stage_id = $t AND changed_at = $now",
                        {k: params[k] for k in ("s", "t", "now")})
    if watched:
        rules.on_changed_many(cur, user, DEALS, watched,
                              [{"stage_id": (source["id"], target["id"])}] * len(watched))
    return moved


def _history(cur, user: User, deal_id: int, source: dict | None, target: dict, amount,
             probability: int | None, when: datetime) -> None:
    cur.execute(
        "INSERT INTO deal_stage_history (deal_id, from_stage_id, to_stage_id, changed_at,"
        " changed_by, amount, probability) VALUES ($d, $f, $t, $at, $by, $amount, $p)",
        {"d": deal_id, "f": source["id"] if source else None, "t": target["id"], "at": when,
         "by": user.id or None, "amount": amount,
         "p": probability if probability is not None else target["probability"]})
    stage_spans.refresh_deal(cur, deal_id)
    stage_reach.refresh_deal(cur, deal_id)  # the deal's row and stage are written by now


LINE_FIELDS = [
    Field("product_id", "Product", "ref", ref="products"),
    Field("description", "Description", required=True, max_length=200),
    Field("quantity", "Quantity", "number", required=True, min_value=0.001, max_value=1e9,
          default=1),
    Field("unit_price", "Unit price", "money", required=True, min_value=0, max_value=1e12),
]


def line_items(db: Database, user: User, deal_id: int) -> list[dict]:
    records.get(db, user, DEALS, deal_id)
    return db.query(
        "SELECT i.id, i.product_id, p.name AS product, i.description, i.quantity, i.unit_price,"
        " i.quantity * i.unit_price AS total FROM deal_products i"
        " LEFT JOIN products p ON p.id = i.product_id WHERE i.deal_id = $d ORDER BY i.id",
        {"d": deal_id})


def add_line_item(db: Database, user: User, deal_id: int, values: dict) -> int:
    """Adds a product line; the deal's amount becomes the sum of its lines."""
    values = dict(values)
    with db.transaction() as cur:
        if values.get("product_id") and not values.get("description"):
            found = cur.execute("SELECT name, unit_price FROM products WHERE id = $id",
                                {"id": values["product_id"]}).fetchone()
            if found:
                values["description"] = found[0]
                if values.get("unit_price") in (None, ""):
                    values["unit_price"] = found[1]
        clean = validate(LINE_FIELDS, values)
        deal = _editable_deal(cur, user, deal_id)
        item_id = cur.execute(
            "INSERT INTO deal_products (deal_id, product_id, description, quantity, unit_price,"
            " created_at, created_by) VALUES ($d, $product_id, $description, $quantity,"
            " $unit_price, $t, $by) RETURNING id",
            {"d": deal_id, "t": datetime.now(), "by": user.id or None, **clean}).fetchone()[0]
        _sum_lines(cur, user, deal, {"line_added": [None, clean["description"]]})
    return item_id


def insert_lines(cur, user: User, deal_id: int, lines: list[dict]) -> None:
    """Product lines of a deal being created (an import): the deal's amount was set from
    them or from the file already, so it stays as it is."""
    _editable_deal(cur, user, deal_id)
    now, added = datetime.now(), []
    for line in lines:
        clean = validate(LINE_FIELDS, line)
        cur.execute(
            "INSERT INTO deal_products (deal_id, product_id, description, quantity, unit_price,"
            " created_at, created_by) VALUES ($d, $product_id, $description, $quantity,"
            " $unit_price, $t, $by)", {"d": deal_id, "t": now, "by": user.id or None, **clean})
        added.append(f"{clean['description']} × {clean['quantity']:g}")
    audit.record(cur, user, "deals", deal_id, "update", {"line_added": [None, "; ".join(added)]})


def lines_of(cur, deal_ids: list[int]) -> dict[int, list[dict]]:
    """{deal id: its product lines in their order, as insert_lines takes them}."""
    found: dict[int, list[dict]] = {}
    for start in range(0, len(deal_ids), 1000):
        names = {f"d{i}": v for i, v in enumerate(deal_ids[start:start + 1000])}
        if not names:
            continue
        for deal_id, product_id, description, quantity, unit_price in cur.execute(
                "SELECT deal_id, product_id, description, quantity, unit_price FROM"
                f" deal_products WHERE deal_id IN ({', '.join('$' + n for n in names)})"
                " ORDER BY deal_id, id", names).fetchall():
            found.setdefault(deal_id, []).append({
                "product_id": product_id, "description": description,
                "quantity": Decimal(str(quantity)), "unit_price": Decimal(str(unit_price))})
    return found


def lines_text(lines: list[dict] | None) -> str | None:
    """Product lines as people write them: "GTX Pro × 2; SKU-7 × 1"."""
    if not lines:
        return None
    return "; ".join(f"{line['description']} × {Decimal(str(line['quantity'])).normalize():f}"
                     for line in lines)


def replace_lines(cur, user: User, deal_id: int, lines: list[dict] | None,
                  expected_version: int | None = None) -> None:
    """The deal's product lines become these (an import's update, or its undo): one audit
    entry old -> new and a new version; the amount is the caller's to set."""
    deal = _editable_deal(cur, user, deal_id)
    if expected_version is not None and deal["version"] != expected_version:
        raise records.ConflictError(deal, [])
    before = lines_text(lines_of(cur, [deal_id]).get(deal_id))
    clean = [validate(LINE_FIELDS, line) for line in lines or []]
    cur.execute("DELETE FROM deal_products WHERE deal_id = $d", {"d": deal_id})
    now = datetime.now()
    for line in clean:
        cur.execute(
            "INSERT INTO deal_products (deal_id, product_id, description, quantity, unit_price,"
            " created_at, created_by) VALUES ($d, $product_id, $description, $quantity,"
            " $unit_price, $t, $by)", {"d": deal_id, "t": now, "by": user.id or None, **line})
    cur.execute("UPDATE deals SET version = version + 1, updated_at = $t, updated_by = $by"
                " WHERE id = $id", {"t": now, "by": user.id or None, "id": deal_id})
    audit.record(cur, user, "deals", deal_id, "update",
                 {"product_lines": [before, lines_text(clean)]})


def remove_line_item(db: Database, user: User, item_id: int) -> None:
    with db.transaction() as cur:
        found = cur.execute("SELECT deal_id, description FROM deal_products WHERE id = $id",
                            {"id": item_id}).fetchone()
        if found is None:
            raise records.NotFound(_("Line #{id} does not exist").format(id=item_id))
        deal = _editable_deal(cur, user, found[0])
        cur.execute("DELETE FROM deal_products WHERE id = $id", {"id": item_id})
        _sum_lines(cur, user, deal, {"line_removed": [found[1], None]})


def _editable_deal(cur, user: User, deal_id: int) -> dict:
    deal = records.fetch(cur, DEALS, deal_id)
    if deal is None or deal["deleted_at"] is not None:
        raise records.NotFound(_("Deal #{id} does not exist or is in the trash").format(
            id=deal_id))
    require(user, "edit", deal)
    return deal


def _sum_lines(cur, user: User, deal: dict, change: dict) -> None:
    total = cur.execute(
        "SELECT sum(quantity * unit_price) FROM deal_products WHERE deal_id = $d",
        {"d": deal["id"]}).fetchone()[0]
    amount = Decimal(str(total)).quantize(Decimal("0.01")) if total is not None \
        else deal["amount"]
    cur.execute("UPDATE deals SET amount = $a, version = version + 1, updated_at = $t,"
                " updated_by = $by WHERE id = $id",
                {"a": amount, "t": datetime.now(), "by": user.id or None, "id": deal["id"]})
    audit.record(cur, user, "deals", deal["id"], "update",
                 {**change, "amount": [deal["amount"], amount]})


def product_choices(db: Database) -> dict[int, str]:
    return {r["id"]: f"{r['name']}" + (f" · {r['unit_price']:,.2f} {r['currency']}"
                                       if r["unit_price"] is not None else "")
            for r in db.query("SELECT id, name, unit_price, currency FROM products"
                              " WHERE active AND deleted_at IS NULL ORDER BY name")}


# --- reads ---------------------------------------------------------------------------------

def stage_history(db: Database, user: User, deal_id: int, now: datetime | None = None
                  ) -> list[dict]:
    """Each stage the deal entered, oldest first, with who moved it and how long it stayed."""
    records.get(db, user, DEALS, deal_id)
    moves = db.query(
        "SELECT h.changed_at, h.from_stage_id, h.to_stage_id, fs.name AS from_stage,"
        " ts.name AS to_stage, u.name AS changed_by, h.amount, h.probability"
        " FROM deal_stage_history h JOIN stages ts ON ts.id = h.to_stage_id"
        " LEFT JOIN stages fs ON fs.id = h.from_stage_id LEFT JOIN users u ON u.id = h.changed_by"
        " WHERE h.deal_id = $d ORDER BY h.changed_at, h.id", {"d": deal_id})
    return time_in_stages(moves, now or datetime.now())


def time_in_stages(moves: list[dict], now: datetime) -> list[dict]:
    """Adds 'left_at' and 'days' (time spent) to each move; the last one lasts until now."""
    out = []
    for i, move in enumerate(moves):
        left = moves[i + 1]["changed_at"] if i + 1 < len(moves) else None
        spent = (left or now) - move["changed_at"]
        out.append({**move, "left_at": left, "days": round(spent.total_seconds() / 86400, 2)})
    return out


CLOSED_DAYS = 90  # won and lost columns show deals closed this recently


def _board_where(user: User, pipeline_id: int, owners: list[int] | None, search: str,
                 close_from: date | None, close_to: date | None, currency: str | None,
                 closed_since: date) -> tuple[str, dict]:
    """Over deals d joined to stages s and, when searching, customers c (_board_from)."""
    clauses, params = _deal_filters(user, pipeline_id, owners, search, close_from, close_to,
                                    currency)
    clauses.append("(s.kind = 'open' OR d.closed_on >= $closed_since)")
    params["closed_since"] = closed_since
    return " AND ".join(clauses), params


def _deal_filters(user: User, pipeline_id: int, owners: list[int] | None, search: str,
                  close_from: date | None, close_to: date | None,
                  currency: str | None) -> tuple[list[str], dict]:
    """The board's conditions over deals d (and customers c when searching), without the
    stage's: one stage's cards are chosen without joining stages."""
    clauses = ["d.deleted_at IS NULL", "d.pipeline_id = $pipeline"]
    params: dict = {"pipeline": pipeline_id}
    if currency:
        clauses.append("d.currency = $currency")
        params["currency"] = currency
    if user.role == "rep":
        clauses.append("d.owner_id = $me")
        params["me"] = user.id
    if owners:
        names = []
        for i, owner in enumerate(owners):
            names.append(f"$o{i}")
            params[f"o{i}"] = owner
        clauses.append(f"d.owner_id IN ({', '.join(names)})")
    if search.strip():
        text = search.strip().replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
        params["q"] = f"%{text}%"
        clauses.append("(d.title ILIKE $q ESCAPE '\\' OR c.name ILIKE $q ESCAPE '\\')")
    if close_from:
        clauses.append("d.expected_close_date >= $close_from")
        params["close_from"] = close_from
    if close_to:
        clauses.append("d.expected_close_date <= $close_to")
        params["close_to"] = close_to
    return clauses, params


def _board_from(search: str) -> str:
    """Deals with their stage; customers only when the search needs their names (the join
    costs as much as the rest of the totals query)."""
    customers = " LEFT JOIN customers c ON c.id = d.customer_id" if search.strip() else ""
    return f" FROM deals d JOIN stages s ON s.id = d.stage_id{customers}"


def board_currencies(db: Database, user: User, pipeline_id: int,
                     owners: list[int] | None = None, search: str = "",
                     close_from: date | None = None, close_to: date | None = None,
                     now: datetime | None = None) -> dict[str, int]:
    """{currency: deals} on the board, most deals first. Amounts in different currencies are
    never added up, so the board shows one currency at a time."""
    since = (now or datetime.now()).date() - timedelta(days=CLOSED_DAYS)
    where, params = _board_where(user, pipeline_id, owners, search, close_from, close_to,
                                 None, since)
    found = db.query(f"SELECT d.currency, count(*) AS n{_board_from(search)} WHERE {where}"
                     " GROUP BY d.currency ORDER BY n DESC, d.currency", params)
    return {r["currency"]: r["n"] for r in found}


NO_VALUE = "__none__"  # the id of a grouped board's "(none)" column
# the board shows one currency at a time (grouping by it would show one column), and a lost
# reason belongs to lost deals, which a grouped board (open deals) does not show
UNGROUPED = ("currency", "lost_reason")


def group_fields(entity: records.Entity | None = None) -> list[str]:
    """What the board can group deals by: the stage, and every single-choice field a user may
    set (read from the entity's specs at call time, so an admin's custom choice fields count)."""
    entity = entity or DEALS
    return ["stage_id"] + [f.name for f in entity.fields
                           if f.type == "choice" and f.editable and not f.create_only
                           and f.name not in UNGROUPED]


def set_group_field(db: Database, user: User, deal_id: int, name: str, value: str | None,
                    expected_version: int | None) -> dict:
    """A card dropped on another column of a board grouped by a choice field: sets that field
    through the deal's update command (validated, permission- and version-checked, audited).
    value None (the "(none)" column) clears it. Stage moves go through move_deal instead."""
    if name == "stage_id" or name not in group_fields():
        raise ValidationError({name: _("The board cannot group deals by this field")})
    return update_deal(db, user, deal_id, {name: value}, expected_version)


def board(db: Database, user: User, pipeline_id: int, owners: list[int] | None = None,
          search: str = "", close_from: date | None = None, close_to: date | None = None,
          per_stage: int = 20, order: str = "amount", currency: str | None = None,
          now: datetime | None = None, group_by: str = "stage_id") -> list[dict]:
    """Columns of the Kanban board: header totals over all matching deals (in SQL) and the top
    `per_stage` cards of each stage by amount or expected close date. Won and lost columns
    hold the deals closed in the last CLOSED_DAYS days.

    group_by a single-choice field (group_fields()) instead: one column per choice plus
    "(none)" (id NO_VALUE: empty, or a value no longer among the choices), over the open deals
    of the pipeline; each column has its choice as "value"."""
    if user.role == "viewer":
        require(user, "view")
    now = now or datetime.now()
    if group_by != "stage_id":
        if group_by not in group_fields():
            raise ValidationError({"group_by": _("The board cannot group deals by this field")})
        return _choice_board(db, user, pipeline_id, DEALS.spec[group_by], owners, search,
                             close_from, close_to, per_stage, order, currency, now)
    since = now.date() - timedelta(days=CLOSED_DAYS)
    where, params = _board_where(user, pipeline_id, owners, search, close_from, close_to,
                                 currency, since)
    stages = pipelines.stages_of(db, pipeline_id)
    totals = {r["stage_id"]: r for r in db.query(
        "SELECT d.stage_id, count(*) AS n, coalesce(sum(d.amount), 0) AS total,"
        " coalesce(sum(d.amount * coalesce(d.probability, s.probability) / 100.0), 0)"
        f" AS weighted{_board_from(search)} WHERE {where} GROUP BY d.stage_id", params)}
    clauses, params = _deal_filters(user, pipeline_id, owners, search, close_from, close_to,
                                    currency)
    cards = _top_cards(db, stages, clauses, params, since, search, per_stage, order, now)
    by_stage: dict[int, list] = {}
    for c in cards:
        by_stage.setdefault(c["stage_id"], []).append(c)
    columns = []
    for s in stages:
        t = totals.get(s["id"], {"n": 0, "total": 0, "weighted": 0})
        shown = [_card(c, s, now) for c in by_stage.get(s["id"], [])]
        columns.append({
            "id": s["id"], "name": s["name"], "kind": s["kind"],
            "probability": s["probability"], "count": t["n"], "total": float(t["total"]),
            "weighted": float(t["weighted"]), "currency": currency or _currency(shown),
            "cards": shown, "more": t["n"] - len(shown),
        })
    return columns


def _top_cards(db: Database, stages: list[dict], clauses: list[str], params: dict,
               closed_since: date, search: str, per_stage: int, order: str,
               now: datetime) -> list[dict]:
    """The first per_stage deals of each stage, in card order: one LIMIT per stage over deals
    alone (ids only), then customers, owners and overdue tasks looked up for those cards.
    Ranking every deal of the pipeline instead costs about three times as much on 100,000
    open deals. A text search is matched once into a narrow table the LIMITs then read."""
    if not stages:
        return []
    sort = ("d.amount DESC NULLS LAST" if order == "amount"
            else "d.expected_close_date ASC NULLS LAST")
    params = {**params, "per_stage": per_stage, "now": now}
    if search.strip():  # match the text once, not once per stage
        matched = ("WITH m AS MATERIALIZED (SELECT d.id, d.stage_id, d.amount,"
                   " d.expected_close_date, d.closed_on FROM deals d"
                   " LEFT JOIN customers c ON c.id = d.customer_id"
                   f" WHERE {' AND '.join(clauses)}) ")
        source, clauses = "m d", []
    else:
        matched, source = "", "deals d"
    parts = []
    for i, stage in enumerate(stages):
        params[f"stage{i}"] = stage["id"]
        kind = [] if stage["kind"] == "open" else ["d.closed_on >= $closed_since"]
        where = " AND ".join(clauses + [f"d.stage_id = $stage{i}"] + kind)
        parts.append(f"(SELECT d.id FROM {source} WHERE {where}"
                     f" ORDER BY {sort}, d.id LIMIT $per_stage)")
    if any(stage["kind"] != "open" for stage in stages):
        params["closed_since"] = closed_since
    return db.query(
        f"{matched}SELECT d.id, d.title, d.stage_id, d.amount, d.currency, d.next_step,"
        " d.stage_entered_at, d.last_activity_at, d.expected_close_date, d.version,"
        " c.name AS customer, u.name AS owner, EXISTS (SELECT 1 FROM tasks k"
        " WHERE k.deal_id = d.id AND k.status = 'open' AND k.deleted_at IS NULL"
        " AND k.due_at < $now) AS overdue"
        f" FROM deals d JOIN ({' UNION ALL '.join(parts)}) picked ON picked.id = d.id"
        " LEFT JOIN customers c ON c.id = d.customer_id LEFT JOIN users u ON u.id = d.owner_id"
        f" ORDER BY d.stage_id, {sort}, d.id", params)


def _choice_board(db: Database, user: User, pipeline_id: int, f: Field,
                  owners: list[int] | None, search: str, close_from: date | None,
                  close_to: date | None, per_stage: int, order: str, currency: str | None,
                  now: datetime) -> list[dict]:
    """board() grouped by the choice field f, over the pipeline's open deals: the same
    filters, one GROUP BY for the totals and one LIMIT per column for the cards."""
    stages = {s["id"]: s for s in pipelines.stages_of(db, pipeline_id)}
    clauses, params = _deal_filters(user, pipeline_id, owners, search, close_from, close_to,
                                    currency)
    open_ids = [i for i, s in stages.items() if s["kind"] == "open"]
    for i, stage_id in enumerate(open_ids):
        params[f"open{i}"] = stage_id
    clauses.append(f"d.stage_id IN ({', '.join(f'$open{i}' for i in range(len(open_ids)))})"
                   if open_ids else "1 = 0")
    for i, choice in enumerate(f.choices):
        params[f"g{i}"] = choice
    column = f"d.{f.name}"  # a validated field name (group_fields)
    known = (f"{column} IN ({', '.join(f'$g{i}' for i in range(len(f.choices)))})"
             if f.choices else "1 = 0")
    group = f"CASE WHEN {known} THEN {column} END"
    customers = " LEFT JOIN customers c ON c.id = d.customer_id" if search.strip() else ""
    where = " AND ".join(clauses)
    totals = {r["grp"]: r for r in db.query(
        f"SELECT {group} AS grp, count(*) AS n, coalesce(sum(d.amount), 0) AS total,"
        " coalesce(sum(d.amount * coalesce(d.probability, s.probability) / 100.0), 0)"
        f" AS weighted FROM deals d JOIN stages s ON s.id = d.stage_id{customers}"
        f" WHERE {where} GROUP BY {group}", params)}
    sort = ("d.amount DESC NULLS LAST" if order == "amount"
            else "d.expected_close_date ASC NULLS LAST")
    if search.strip():  # match the text once, not once per column
        matched = (f"WITH m AS MATERIALIZED (SELECT d.id, d.amount, d.expected_close_date,"
                   f" {column} FROM deals d{customers} WHERE {where}) ")
        source, base = "m d", []
    else:
        matched, source, base = "", "deals d", clauses
    groups = [f"{column} = $g{i}" for i in range(len(f.choices))] + [f"NOT ({known})"
                                                                      f" OR {column} IS NULL"]
    parts = [f"(SELECT d.id FROM {source} WHERE {' AND '.join(base + ['(' + g + ')'])}"
             f" ORDER BY {sort}, d.id LIMIT $per_stage)" for g in groups]
    cards = db.query(
        f"{matched}SELECT d.id, d.title, d.stage_id, {column} AS grp, d.amount, d.currency,"
        " d.next_step, d.stage_entered_at, d.last_activity_at, d.expected_close_date,"
        " d.version, c.name AS customer, u.name AS owner, EXISTS (SELECT 1 FROM tasks k"
        " WHERE k.deal_id = d.id AND k.status = 'open' AND k.deleted_at IS NULL"
        " AND k.due_at < $now) AS overdue"
        f" FROM deals d JOIN ({' UNION ALL '.join(parts)}) picked ON picked.id = d.id"
        " LEFT JOIN customers c ON c.id = d.customer_id LEFT JOIN users u ON u.id = d.owner_id"
        f" ORDER BY {sort}, d.id", {**params, "per_stage": per_stage, "now": now})
    by_group: dict = {}
    for c in cards:
        key = c["grp"] if c["grp"] in f.choices else None
        by_group.setdefault(key, []).append(_card(c, stages[c["stage_id"]], now))
    columns = []
    for value in [*f.choices, None]:
        t = totals.get(value, {"n": 0, "total": 0, "weighted": 0})
        shown = by_group.get(value, [])
        columns.append({
            "id": NO_VALUE if value is None else value, "value": value,
            "name": f.choice_label(value) if value is not None else _("(none)"),
            "kind": "open", "probability": None, "count": t["n"], "total": float(t["total"]),
            "weighted": float(t["weighted"]), "currency": currency or _currency(shown),
            "cards": shown, "more": t["n"] - len(shown),
        })
    return columns


def _currency(cards: list[dict]) -> str:
    found = {c["currency"] for c in cards}
    return found.pop() if len(found) == 1 else ""


def _card(row: dict, stage: dict, now: datetime) -> dict:
    days = (now - row["stage_entered_at"]).days
    last_touch = max(row["stage_entered_at"], row["last_activity_at"] or row["stage_entered_at"])
    rotting = (stage["kind"] == "open" and stage["rotting_days"] is not None
               and (now - last_touch).days > stage["rotting_days"])
    return {"id": row["id"], "title": row["title"], "customer": row["customer"] or "",
            "amount": float(row["amount"] or 0), "currency": row["currency"],
            "owner": row["owner"] or "", "days_in_stage": days, "rotting": rotting,
            "overdue": row["overdue"], "next_step": row["next_step"] or "",
            "version": row["version"]}


DEALS = records.Entity(
    table="deals", label="Deal", plural="Deals", code_fields=FIELDS, title_sql="t.title",
    creator=create_deal, updater=update_deal, insert_in=insert_deal, update_in=update_deal_in,
)
