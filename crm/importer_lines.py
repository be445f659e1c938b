"""Deals' product lines in SQL, as the row path's Python words and compares them: the ground
for a set-based update of deals with product lines (issue #8, item 9), which
crm/importer_deals.refusal still sends row by row.

- keys: importer._line_keys as one text a deal (the same text for the same lines, whether
  read from deal_products by current() or made in Python from a file's lines by keys()),
  so "the lines differ" is one comparison of two texts in SQL;
- text: deals.lines_text of the deal's lines (the change shown, the audit's old value);
- plain: json.dumps(importer._plain_lines(...)) of them (an import record's before, for
  undo), character for character;
- undo_lines: the old lines an import record holds, as replace_lines validates them
  (importer_updates._undo writes them back set-based)."""
from __future__ import annotations

import json
from decimal import Decimal


def _normal(q: str) -> str:
    """A DECIMAL's text as Decimal.normalize() formats it with :f (no trailing zeros)."""
    return f"CASE WHEN contains({q}, '.') THEN rtrim(rtrim({q}, '0'), '.') ELSE {q} END"


def key_sql(product_id: str, description: str, quantity: str, unit_price: str) -> str:
    """One line's key (quantity and unit_price as DECIMAL expressions)."""
    return (f"concat(coalesce(CAST({product_id} AS VARCHAR), ''), '|', to_json({description}),"
            f" '|', {_normal(f'CAST({quantity} AS VARCHAR)')}, '|',"
            f" CAST(CAST({unit_price} AS DECIMAL(14, 2)) AS VARCHAR))")


def current_sql(deal_ids: str) -> str:
    """SELECT deal_id, keys, text, plain of the product lines of the deals deal_ids (a
    subquery of ids) selects; deals without lines have no row."""
    q = "CAST(d.quantity AS VARCHAR)"
    return (
        "SELECT d.deal_id,"
        f" string_agg({key_sql('d.product_id', 'd.description', 'd.quantity', 'd.unit_price')},"
        " ';' ORDER BY d.id) AS keys,"
        f" string_agg(concat(d.description, ' × ', {_normal(q)}), '; ' ORDER BY d.id) AS text,"
        " concat('[', string_agg(concat('{\"product_id\": ', coalesce(CAST(d.product_id AS"
        " VARCHAR), 'null'), ', \"description\": ', to_json(d.description), ', \"quantity\": ',"
        f" to_json({q}), ', \"unit_price\": ', to_json(CAST(d.unit_price AS VARCHAR)), '}}'),"
        " ', ' ORDER BY d.id), ']') AS plain"
        f" FROM deal_products d WHERE d.deal_id IN ({deal_ids}) GROUP BY d.deal_id")


def keys(lines: list[dict] | None) -> str | None:
    """The keys current_sql() gives lines equal to these (importer._line_keys), in Python
    (a file's lines, made once per distinct cell)."""
    if not lines:
        return None
    out = []
    for x in lines:
        q = f"{Decimal(str(x['quantity'])).normalize():f}"
        price = Decimal(str(x["unit_price"])).quantize(Decimal("0.01"))
        pid = "" if x.get("product_id") is None else str(x["product_id"])
        out.append(f"{pid}|{json.dumps(x['description'], ensure_ascii=False)}|{q}|{price}")
    return ";".join(out)


def undo_lines(items: str) -> str:
    """SELECT item, pos, product_id, description, quantity, unit_price, bad: the old product
    lines an import's records of updates (items, as import_records) hold (_plain_lines'
    JSON), as deals.replace_lines validates them; bad when validate() would refuse one."""
    from crm import deals
    from crm.importer_updates import _restored

    specs = {f.name: f for f in deals.LINE_FIELDS}
    pid, pid_bad = _restored(specs["product_id"], "json_extract(l.e, '$.product_id')")
    text, text_bad = _restored(specs["description"], "json_extract(l.e, '$.description')")
    q = "TRY_CAST(json_extract_string(l.e, '$.quantity') AS DECIMAL(38, 10))"
    p = "TRY_CAST(json_extract_string(l.e, '$.unit_price') AS DECIMAL(38, 10))"
    bad = (f"({pid_bad}) OR ({text_bad}) OR coalesce({q} IS NULL OR {q} < 0.001 OR {q} > 1e9,"
           f" true) OR coalesce({p} IS NULL OR {p} < 0 OR {p} > 1e12, true)")
    return (f"SELECT r.id AS item, l.k AS pos, {pid} AS product_id, {text} AS description,"
            f" {q} AS quantity, round_even({p}, 2) AS unit_price,"
            f" trim(json_extract_string(l.e, '$.quantity')) AS q_text, {bad} AS bad"
            f" FROM {items} r, LATERAL (SELECT unnest(x) AS e, generate_subscripts(x, 1) AS k"
            " FROM (SELECT CAST(json_extract(r.before, '$.product_lines[0][*]') AS JSON[]) AS x))"
            " l WHERE r.import_id = $i AND r.action <> 'create'"
            " AND json_exists(r.before, '$.product_lines')")


def text_sql(q_text: str, description: str) -> str:
    """One line as deals.lines_text words it (q_text: the quantity's decimal text)."""
    return f"concat({description}, ' × ', {_normal(q_text)})"
