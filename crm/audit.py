"""The audit log: who changed what, when, old -> new. Written inside the command's transaction."""
from __future__ import annotations

import json
from datetime import date, datetime
from decimal import Decimal


def _plain(value):
    if isinstance(value, (datetime, date)):
        return value.isoformat()
    if isinstance(value, Decimal):
        return float(value)
    return value


def _payload(changes: dict | None) -> str | None:
    if not changes:
        return None
    return json.dumps({k: [_plain(o), _plain(n)] for k, (o, n) in changes.items()},
                      ensure_ascii=False)


def record(cur, user, entity: str, record_id: int | None, action: str, changes: dict | None = None):
    payload = _payload(changes)
    cur.execute(
        "INSERT INTO audit_log (occurred_at, user_id, username, entity, record_id, action, changes)"
        " VALUES ($at, $uid, $uname, $entity, $rid, $action, $changes)",
        {"at": datetime.now(), "uid": user.id or None, "uname": user.username, "entity": entity,
         "rid": record_id, "action": action, "changes": payload},
    )


def record_each(cur, user, entity: str, record_ids: list[int], action: str,
                changes: list[dict | None]):
    """One audit entry per record, each with its own changes, in one statement (imports)."""
    import pandas as pd

    frame = pd.DataFrame({"record_id": record_ids, "changes": [_payload(c) for c in changes]})
    cur.register("crm_audit_each", frame)
    try:
        cur.execute(
            "INSERT INTO audit_log (occurred_at, user_id, username, entity, record_id, action,"
            " changes) SELECT $at, $uid, $uname, $entity, record_id, $action, changes"
            " FROM crm_audit_each",
            {"at": datetime.now(), "uid": user.id or None, "uname": user.username,
             "entity": entity, "action": action})
    finally:
        cur.unregister("crm_audit_each")


def record_many(cur, user, entity: str, ids_sql: str, params: dict, action: str,
                changes: dict | None = None):
    """One audit entry per id that ids_sql selects, all with the same changes (bulk moves)."""
    cur.execute(
        "INSERT INTO audit_log (occurred_at, user_id, username, entity, record_id, action,"
        f" changes) SELECT $at, $uid, $uname, $entity, ids.id, $action, $changes"
        f" FROM ({ids_sql}) ids ORDER BY ids.id",  # in the records' order, whatever the join
        {**params, "at": datetime.now(), "uid": user.id or None, "uname": user.username,
         "entity": entity, "action": action, "changes": _payload(changes)},
    )


def history(db, entity: str, record_id: int, limit: int = 200) -> list[dict]:
    rows = db.query(
        "SELECT occurred_at AS at, username, action, changes, import_id FROM audit_log"
        " WHERE entity = $e AND record_id = $id ORDER BY occurred_at DESC, id DESC LIMIT $n",
        {"e": entity, "id": record_id, "n": limit},
    )
    for r in rows:
        r["changes"] = json.loads(r["changes"]) if r["changes"] else {}
    return rows
