import pandas as pd
import streamlit as st

from crm import customers, deals, i18n, market, pipelines, records
from crm.auth import PermissionDenied
from crm.fields import ValidationError
from crm.i18n import gettext as _
from crm.ui.followup import activity_tab, tasks_tab
from crm.ui.forms import submit_form
from crm.ui.guard import require_user
from crm.ui.market import competitor_picker
from crm.ui.record import record_page
from crm.ui.session import get_db
from crm.ui.tables import grid
from crm.ui.text import md_escape

user = require_user("rep")
db = get_db()


def choices(deal: dict | None) -> dict:
    customer_id = deal["customer_id"] if deal else None
    return {
        "customer_id": customers.customer_choices(db, user, include=customer_id),
        "contact_id": customers.contact_choices(db, user, customer_id),
        "stage_id": pipelines.stage_choices(db),
        "competitor_id": market.competitor_choices(db, user),
    }


def move_to(deal: dict) -> None:
    """The plain way to move a deal (keyboard, AppTest); the board's drag-and-drop does the
    same through the same command."""
    stages = pipelines.stages_of(db, deal["pipeline_id"])
    names = {s["id"]: _("{stage} ({probability})").format(
        stage=s["name"], probability=i18n.percent(s["probability"] / 100)) for s in stages}
    kinds = {s["id"]: s["kind"] for s in stages}
    current = next((s for s in stages if s["id"] == deal["stage_id"]), None)
    if current is None:  # its stage was deleted (before deleting moved trashed deals too)
        st.warning(_("This deal's stage no longer exists, so it shows on no board. Move it to "
                     "a stage below."), icon=":material/warning:")
    else:
        probability = (current["probability"] if deal["probability"] is None
                       else deal["probability"])
        values = {"stage": md_escape(current["name"]),
                  "probability": i18n.percent(probability / 100)}
        if deal["closed_on"]:
            st.markdown(_("**Stage:** {stage} · probability {probability} · closed {date}").format(
                date=i18n.format_date(deal["closed_on"]), **values))
        else:
            st.markdown(_("**Stage:** {stage} · probability {probability}").format(**values))
    for link, text in (("lost_to_competitor_id", _("Lost to {competitor}")),
                       ("competitor_id", _("Competing against {competitor}"))):
        if deal.get(link):  # the competitor records the deal names (market audit)
            st.page_link("pages/competitor.py", query_params={"id": deal[link]},
                         icon=":material/swords:", label=text.format(competitor=md_escape(
                             records.ref_label(db, user, "competitors", deal[link]))))
    cols = st.columns([2, 2, 2, 1], vertical_alignment="bottom")
    # the version the user saw when choosing: a move by someone else since is a conflict
    seen = deal["version"]
    target = cols[0].selectbox(_("Move to"), [i for i in names if i != deal["stage_id"]],
                               format_func=names.get, key="move_to", index=None,
                               placeholder=_("Choose a stage"),
                               on_change=lambda: st.session_state.update(move_version=seen))
    reason = competitor = None
    if target is not None and kinds[target] == "lost":
        reason_field = deals.DEALS.spec["lost_reason"]
        reason = cols[1].selectbox(_("Lost reason *"), deals.LOST_REASONS, index=None,
                                   format_func=reason_field.choice_label,
                                   key="move_lost_reason")
        competitor = competitor_picker(db, user, _("Lost to competitor"), "move_competitor",
                                       cols[2])
    if cols[3].button(_("Move"), key="move_button", type="primary", disabled=target is None):
        try:
            deals.move_deal(db, user, deal["id"], target, lost_reason=reason,
                            competitor=competitor,
                            expected_version=st.session_state.get("move_version", seen))
        except ValidationError as exc:
            st.error(md_escape(" ".join(exc.errors.values())))
            return
        except PermissionDenied as exc:
            st.error(md_escape(exc))
            return
        except records.WriteConflict as exc:
            st.error(md_escape(exc))
            return
        except records.ConflictError:
            st.session_state.pop("move_version", None)  # a retry moves what is shown now
            st.warning(_("Someone changed this deal a moment ago; look again and retry."))
            return
        for key in ("move_to", "move_lost_reason", "move_competitor", "move_version"):
            st.session_state.pop(key, None)
        st.toast(_("Moved to {stage}").format(stage=md_escape(names[target])))
        st.rerun()


def stage_history(deal: dict) -> None:
    moves = deals.stage_history(db, user, deal["id"])
    frame = pd.DataFrame([{"entered": i18n.format_datetime(m["changed_at"]),
                           "from": m["from_stage"] or "—", "to": m["to_stage"],
                           "days": i18n.number(m["days"], 1) if m["days"] is not None else None,
                           "by": m["changed_by"] or "—",
                           "probability": i18n.percent(m["probability"] / 100)
                           if m["probability"] is not None else None,
                           "amount": i18n.money(m["amount"], deal["currency"])
                           if m["amount"] is not None else None}
                          for m in moves],
                         columns=["entered", "from", "to", "days", "by", "probability", "amount"])
    headers = {"entered": _("Entered"), "from": _("From"), "to": _("To"),
               "days": _("Days in stage"), "by": _("By"), "probability": _("Probability"),
               "amount": _("Amount")}
    grid(frame, hide_index=True, placeholder="—",
                 column_config={name: st.column_config.TextColumn(header)
                                for name, header in headers.items()})


def line_items(deal: dict) -> None:
    items = deals.line_items(db, user, deal["id"])
    if items:
        for item in items:
            c = st.columns([4, 1.2, 1.6, 1.6, 0.8], vertical_alignment="center")
            c[0].text(item["description"])
            quantity = float(item["quantity"])
            c[1].text(_("{quantity} ×").format(
                quantity=i18n.number(quantity, 0 if quantity.is_integer() else 2)))
            c[2].text(i18n.number(item["unit_price"], 2))
            c[3].text(i18n.money(item["total"], deal["currency"]))
            if c[4].button("", key=f"line_remove:{item['id']}", icon=":material/close:",
                           help=_("Remove this line")):
                deals.remove_line_item(db, user, item["id"])
                st.rerun()
        st.caption(_("The deal's amount is the sum of its lines."))
    else:
        st.caption(_("No products on this deal. Lines are optional; once there are any, the "
                     "deal's amount is their sum."))
    added = submit_form(f"line:new:{deal['id']}", deals.LINE_FIELDS, {"quantity": 1},
                        {"product_id": deals.product_choices(db)},
                        lambda values: deals.add_line_item(db, user, deal["id"], values),
                        submit_label=_("Add line"))
    if added is not None:
        st.rerun()


params = st.query_params
new_values = {k: int(params[k]) for k in ("customer_id", "stage_id") if
              str(params.get(k, "")).isdigit()}
if "stage_id" not in new_values:
    first = pipelines.stages_of(db, pipelines.default_pipeline_id(db))
    if first:
        new_values["stage_id"] = first[0]["id"]

record_page(
    deals.DEALS, user, list_page="pages/deals.py", choices=choices, new_values=new_values,
    actions=move_to,
    tabs={_("Stage history"): stage_history,
          _("Activities"): lambda d: activity_tab(user, "deal_id", d["id"]),
          _("Tasks"): lambda d: tasks_tab(user, "deal_id", d["id"]),
          _("Products"): line_items},
)
