import pandas as pd
import streamlit as st

from crm import customers, deals, pipelines, records
from crm.auth import PermissionDenied
from crm.fields import ValidationError
from crm.ui.followup import activity_tab, tasks_tab
from crm.ui.forms import submit_form
from crm.ui.guard import require_user
from crm.ui.record import record_page
from crm.ui.session import get_db
from crm.ui.text import md_escape

user = require_user("rep")
db = get_db()


def choices(deal: dict | None) -> dict:
    customer_id = deal["customer_id"] if deal else None
    return {
        "customer_id": customers.customer_choices(db, user, include=customer_id),
        "contact_id": customers.contact_choices(db, user, customer_id),
        "stage_id": pipelines.stage_choices(db),
    }


def move_to(deal: dict) -> None:
    """The plain way to move a deal (keyboard, AppTest); the board's drag-and-drop does the
    same through the same command."""
    stages = pipelines.stages_of(db, deal["pipeline_id"])
    names = {s["id"]: f"{s['name']} ({s['probability']} %)" for s in stages}
    kinds = {s["id"]: s["kind"] for s in stages}
    current = next((s for s in stages if s["id"] == deal["stage_id"]), None)
    if current is None:  # its stage was deleted (before deleting moved trashed deals too)
        st.warning("This deal's stage no longer exists, so it shows on no board. Move it to "
                   "a stage below.", icon=":material/warning:")
    else:
        probability = (current["probability"] if deal["probability"] is None
                       else deal["probability"])
        st.markdown(f"**Stage:** {md_escape(current['name'])} · probability {probability} %"
                    + (f" · closed {deal['closed_on']}" if deal["closed_on"] else ""))
    cols = st.columns([2, 2, 2, 1], vertical_alignment="bottom")
    target = cols[0].selectbox("Move to", [i for i in names if i != deal["stage_id"]],
                               format_func=names.get, key="move_to", index=None,
                               placeholder="Choose a stage")
    reason = competitor = None
    if target is not None and kinds[target] == "lost":
        reason = cols[1].selectbox("Lost reason *", deals.LOST_REASONS, index=None,
                                   format_func=lambda r: r.replace("_", " ").capitalize(),
                                   key="move_lost_reason")
        competitor = cols[2].text_input("Lost to competitor", key="move_competitor")
    if cols[3].button("Move", key="move_button", type="primary", disabled=target is None):
        try:
            deals.move_deal(db, user, deal["id"], target, lost_reason=reason,
                            competitor=competitor, expected_version=deal["version"])
        except ValidationError as exc:
            st.error(md_escape(" ".join(exc.errors.values())))
            return
        except PermissionDenied as exc:
            st.error(md_escape(exc))
            return
        except records.ConflictError:
            st.warning("Someone changed this deal a moment ago; look again and retry.")
            return
        for key in ("move_to", "move_lost_reason", "move_competitor"):
            st.session_state.pop(key, None)
        st.toast(f"Moved to {md_escape(names[target])}")
        st.rerun()


def stage_history(deal: dict) -> None:
    moves = deals.stage_history(db, user, deal["id"])
    frame = pd.DataFrame([{"Entered": m["changed_at"], "From": m["from_stage"] or "—",
                           "To": m["to_stage"], "Days in stage": m["days"],
                           "By": m["changed_by"] or "—", "Probability %": m["probability"],
                           "Amount": float(m["amount"]) if m["amount"] is not None else None}
                          for m in moves])
    st.dataframe(frame, hide_index=True, placeholder="—",
                 column_config={"Entered": st.column_config.DatetimeColumn(
                     format="YYYY-MM-DD HH:mm"),
                     "Days in stage": st.column_config.NumberColumn(format="%.1f"),
                     "Amount": st.column_config.NumberColumn(format="localized")})


def line_items(deal: dict) -> None:
    items = deals.line_items(db, user, deal["id"])
    if items:
        for item in items:
            c = st.columns([4, 1.2, 1.6, 1.6, 0.8], vertical_alignment="center")
            c[0].text(item["description"])
            c[1].text(f"{float(item['quantity']):g} ×")
            c[2].text(f"{float(item['unit_price']):,.2f}")
            c[3].text(f"{float(item['total']):,.2f} {deal['currency']}")
            if c[4].button("", key=f"line_remove:{item['id']}", icon=":material/close:",
                           help="Remove this line"):
                deals.remove_line_item(db, user, item["id"])
                st.rerun()
        st.caption("The deal's amount is the sum of its lines.")
    else:
        st.caption("No products on this deal. Lines are optional; once there are any, the "
                   "deal's amount is their sum.")
    added = submit_form(f"line:new:{deal['id']}", deals.LINE_FIELDS, {"quantity": 1},
                        {"product_id": deals.product_choices(db)},
                        lambda values: deals.add_line_item(db, user, deal["id"], values),
                        submit_label="Add line")
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
    tabs={"Stage history": stage_history,
          "Activities": lambda d: activity_tab(user, "deal_id", d["id"]),
          "Tasks": lambda d: tasks_tab(user, "deal_id", d["id"]),
          "Products": line_items},
)
