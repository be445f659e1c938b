"""Pipelines and their ordered stages (admin settings)."""
from __future__ import annotations

from datetime import datetime

from crm import audit, i18n
from crm.auth import PermissionDenied, User
from crm.db import Database, rows
from crm.fields import Field, ValidationError, validate
from crm.i18n import N_, gettext as _, ngettext

KINDS = ("open", "won", "lost")
FORECAST_CATEGORIES = ("pipeline", "best_case", "commit", "closed", "omitted")
DEFAULT_PIPELINE = N_("New business")  # made by migration 002, in English
DEFAULT_STAGES = [  # name, probability, rotting days, kind, forecast category
    (N_("Prospecting"), 10, 14, "open", "pipeline"),
    (N_("Qualification"), 25, 14, "open", "pipeline"),
    (N_("Proposal"), 50, 10, "open", "best_case"),
    (N_("Negotiation"), 75, 7, "open", "commit"),
    (N_("Won"), 100, None, "won", "closed"),
    (N_("Lost"), 0, None, "lost", "omitted"),
]

STAGE_FIELDS = [
    Field("name", "Stage", required=True, max_length=60),
    Field("probability", "Win probability %", "integer", required=True, min_value=0,
          max_value=100),
    Field("rotting_days", "Rotting after (days)", "integer", min_value=1, max_value=3650,
          help="A deal with no activity for longer than this stands out on the board"),
    Field("kind", "Kind", "choice", required=True, choices=KINDS, default="open"),
    Field("forecast_category", "Forecast category", "choice", required=True,
          choices=FORECAST_CATEGORIES, default="pipeline"),
]


def _admin(user: User) -> None:
    if user.role != "admin":
        raise PermissionDenied(_("Only an admin can change pipelines and stages"))


def list_pipelines(db: Database) -> list[dict]:
    return db.query(
        "SELECT id, name, is_default FROM pipelines WHERE deleted_at IS NULL"
        " ORDER BY position, id"
    )


def default_pipeline_id(db: Database) -> int | None:
    found = list_pipelines(db)
    return next((p["id"] for p in found if p["is_default"]), found[0]["id"] if found else None)


def stages_of(db_or_cur, pipeline_id: int) -> list[dict]:
    sql = ("SELECT id, pipeline_id, name, position, probability, rotting_days, kind,"
           " forecast_category FROM stages WHERE pipeline_id = $p AND deleted_at IS NULL"
           " ORDER BY position, id")
    if isinstance(db_or_cur, Database):
        return db_or_cur.query(sql, {"p": pipeline_id})
    return rows(db_or_cur, sql, {"p": pipeline_id})


def get_stage(db_or_cur, stage_id: int) -> dict | None:
    sql = ("SELECT s.id, s.pipeline_id, s.name, s.position, s.probability, s.rotting_days,"
           " s.kind, s.forecast_category, p.name AS pipeline_name FROM stages s"
           " JOIN pipelines p ON p.id = s.pipeline_id"
           " WHERE s.id = $id AND s.deleted_at IS NULL AND p.deleted_at IS NULL")
    found = (db_or_cur.query(sql, {"id": stage_id}) if isinstance(db_or_cur, Database)
             else rows(db_or_cur, sql, {"id": stage_id}))
    return found[0] if found else None


def all_stages(db: Database) -> list[dict]:
    """Every live stage with its pipeline's name, for pickers: pipeline order, then stage order."""
    return db.query(
        "SELECT s.id, s.name, s.kind, s.probability, p.id AS pipeline_id,"
        " p.name AS pipeline_name FROM stages s JOIN pipelines p ON p.id = s.pipeline_id"
        " WHERE s.deleted_at IS NULL AND p.deleted_at IS NULL"
        " ORDER BY p.position, p.id, s.position, s.id"
    )


def create_pipeline(db: Database, user: User, name: str) -> int:
    _admin(user)
    name = (name or "").strip()
    if not name:
        raise ValidationError({"name": _("Pipeline name is required")})
    with db.transaction() as cur:
        if cur.execute("SELECT 1 FROM pipelines WHERE lower(name) = lower($n)"
                       " AND deleted_at IS NULL", {"n": name}).fetchone():
            raise ValidationError({"name": _("A pipeline named {name} exists already").format(
                name=repr(name))})
        position = cur.execute("SELECT coalesce(max(position), -1) + 1 FROM pipelines"
                               ).fetchone()[0]
        pid = cur.execute("INSERT INTO pipelines (name, position, created_at)"
                          " VALUES ($n, $p, $t) RETURNING id",
                          {"n": name, "p": position, "t": datetime.now()}).fetchone()[0]
        for i, (stage, prob, rot, kind, cat) in enumerate(DEFAULT_STAGES):
            cur.execute(
                "INSERT INTO stages (pipeline_id, name, position, probability, rotting_days,"
                " kind, forecast_category, created_at) VALUES ($p, $n, $i, $pr, $r, $k, $c, $t)",
                {"p": pid, "n": _(stage), "i": i, "pr": prob, "r": rot, "k": kind, "c": cat,
                 "t": datetime.now()})
        audit.record(cur, user, "pipelines", pid, "create", {"name": [None, name]})
    return pid


def name_defaults_in(db: Database, lang: str) -> None:
    """Names the default pipeline and its stages in the install's language (first run), as
    long as they still carry the English names migration 002 gave them."""
    with i18n.using(lang):
        names = [(english, _(english)) for english in
                 (DEFAULT_PIPELINE, *(s[0] for s in DEFAULT_STAGES))]
    with db.transaction() as cur:
        for english, local in names[:1]:
            cur.execute("UPDATE pipelines SET name = $new WHERE name = $old AND is_default",
                        {"new": local, "old": english})
        for english, local in names[1:]:
            cur.execute("UPDATE stages SET name = $new WHERE name = $old AND pipeline_id IN"
                        " (SELECT id FROM pipelines WHERE is_default)",
                        {"new": local, "old": english})


def rename_pipeline(db: Database, user: User, pipeline_id: int, name: str) -> None:
    _admin(user)
    name = (name or "").strip()
    if not name:
        raise ValidationError({"name": _("Pipeline name is required")})
    with db.transaction() as cur:
        old = cur.execute("SELECT name FROM pipelines WHERE id = $id", {"id": pipeline_id}
                          ).fetchone()
        if old is None:
            raise LookupError(_("Pipeline #{id} does not exist").format(id=pipeline_id))
        if cur.execute("SELECT 1 FROM pipelines WHERE lower(name) = lower($n) AND id <> $id"
                       " AND deleted_at IS NULL", {"n": name, "id": pipeline_id}).fetchone():
            raise ValidationError({"name": _("A pipeline named {name} exists already").format(
                name=repr(name))})
        cur.execute("UPDATE pipelines SET name = $n WHERE id = $id",
                    {"n": name, "id": pipeline_id})
        audit.record(cur, user, "pipelines", pipeline_id, "update", {"name": [old[0], name]})


def add_stage(db: Database, user: User, pipeline_id: int, values: dict) -> int:
    _admin(user)
    clean = validate(STAGE_FIELDS, values)
    with db.transaction() as cur:
        position = cur.execute(
            "SELECT coalesce(max(position), -1) + 1 FROM stages WHERE pipeline_id = $p"
            " AND deleted_at IS NULL", {"p": pipeline_id}).fetchone()[0]
        # new stages go before the closing (won/lost) ones
        closing = cur.execute(
            "SELECT min(position) FROM stages WHERE pipeline_id = $p AND deleted_at IS NULL"
            " AND kind <> 'open'", {"p": pipeline_id}).fetchone()[0]
        if clean["kind"] == "open" and closing is not None:
            cur.execute("UPDATE stages SET position = position + 1 WHERE pipeline_id = $p"
                        " AND position >= $c", {"p": pipeline_id, "c": closing})
            position = closing
        sid = cur.execute(
            "INSERT INTO stages (pipeline_id, name, position, probability, rotting_days, kind,"
            " forecast_category, created_at) VALUES ($p, $name, $pos, $probability,"
            " $rotting_days, $kind, $forecast_category, $t) RETURNING id",
            {"p": pipeline_id, "pos": position, "t": datetime.now(), **clean}).fetchone()[0]
        audit.record(cur, user, "stages", sid, "create", {k: [None, v] for k, v in clean.items()})
    return sid


def update_stage(db: Database, user: User, stage_id: int, values: dict) -> None:
    _admin(user)
    clean = validate(STAGE_FIELDS, values, partial=True)
    with db.transaction() as cur:
        current = get_stage(cur, stage_id)
        if current is None:
            raise LookupError(_("Stage #{id} does not exist").format(id=stage_id))
        changes = {k: (current[k], v) for k, v in clean.items() if current[k] != v}
        if not changes:
            return
        assigns = ", ".join(f"{k} = ${k}" for k in changes)
        update = f"UPDATE stages SET {assigns} WHERE id = $id"  # names from STAGE_FIELDS
        cur.execute(update, {"id": stage_id, **{k: v for k, (_, v) in changes.items()}})
        audit.record(cur, user, "stages", stage_id, "update", changes)


def move_stage(db: Database, user: User, stage_id: int, step: int) -> None:
    """Swaps the stage with its neighbour: step -1 moves it left, +1 right."""
    _admin(user)
    with db.transaction() as cur:
        stage = get_stage(cur, stage_id)
        if stage is None:
            raise LookupError(_("Stage #{id} does not exist").format(id=stage_id))
        ordered = stages_of(cur, stage["pipeline_id"])
        index = next(i for i, s in enumerate(ordered) if s["id"] == stage_id)
        other = index + step
        if not 0 <= other < len(ordered):
            return
        ordered[index], ordered[other] = ordered[other], ordered[index]
        for position, s in enumerate(ordered):
            cur.execute("UPDATE stages SET position = $p WHERE id = $id",
                        {"p": position, "id": s["id"]})
        audit.record(cur, user, "stages", stage_id, "reorder",
                     {"position": [index, other]})


def reorder_stages(db: Database, user: User, pipeline_id: int, stage_ids: list[int]) -> None:
    """Puts the pipeline's stages in the given order (every live stage, once)."""
    _admin(user)
    with db.transaction() as cur:
        current = [s["id"] for s in stages_of(cur, pipeline_id)]
        if sorted(current) != sorted(int(i) for i in stage_ids):
            raise ValidationError({"stages": _("Give every stage of the pipeline once")})
        for position, sid in enumerate(stage_ids):
            cur.execute("UPDATE stages SET position = $p WHERE id = $id",
                        {"p": position, "id": int(sid)})
        audit.record(cur, user, "pipelines", pipeline_id, "reorder",
                     {"stages": [current, [int(i) for i in stage_ids]]})


def deals_in_stage(db_or_cur, stage_id: int, trashed: bool = False) -> int:
    """Live deals in the stage; with trashed=True, those in the trash."""
    sql = ("SELECT count(*) FROM deals WHERE stage_id = $s AND deleted_at IS "
           + ("NOT NULL" if trashed else "NULL"))
    if isinstance(db_or_cur, Database):
        return db_or_cur.scalar(sql, {"s": stage_id})
    return db_or_cur.execute(sql, {"s": stage_id}).fetchone()[0]


def delete_stage(db: Database, user: User, stage_id: int, move_deals_to: int | None = None
                 ) -> int:
    """Removes a stage. A stage that holds deals needs move_deals_to, another stage of the same
    pipeline; its deals move there (with stage history). Returns how many deals moved."""
    from crm import deals  # deals import this module

    _admin(user)
    with db.transaction() as cur:
        stage = get_stage(cur, stage_id)
        if stage is None:
            raise LookupError(_("Stage #{id} does not exist").format(id=stage_id))
        # deals in the trash move too: restored later, they need a stage that exists
        held = deals_in_stage(cur, stage_id) + deals_in_stage(cur, stage_id, trashed=True)
        if held and move_deals_to is None:
            raise ValidationError({"move_deals_to": ngettext(
                "{stage} holds {n} deal, counting those in the trash: choose a stage to move"
                " it to first",
                "{stage} holds {n} deals, counting those in the trash: choose a stage to move"
                " them to first", held).format(stage=stage["name"], n=i18n.number(held))})
        moved = 0
        if held:
            target = get_stage(cur, move_deals_to)
            if target is None or target["pipeline_id"] != stage["pipeline_id"] \
                    or target["id"] == stage_id:
                raise ValidationError({"move_deals_to": _("Choose another stage of this pipeline")})
            moved = deals.move_all(cur, user, stage, target)
        cur.execute("UPDATE stages SET deleted_at = $t WHERE id = $id",
                    {"t": datetime.now(), "id": stage_id})
        audit.record(cur, user, "stages", stage_id, "delete",
                     {"deals_moved": [None, moved]} if moved else None)
    return moved


def stage_choices(db: Database, pipeline_id: int | None = None) -> dict[int, str]:
    """{stage id: "Pipeline › Stage"} for pickers and filters."""
    return {s["id"]: f"{s['pipeline_name']} › {s['name']}" for s in all_stages(db)
            if pipeline_id is None or s["pipeline_id"] == pipeline_id}
