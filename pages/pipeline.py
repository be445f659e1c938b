import streamlit as st

from crm import auth, deals, pipelines, records
from crm.auth import PermissionDenied
from crm.fields import ValidationError
from crm.ui.guard import require_user
from crm.ui.kanban import kanban_board
from crm.ui.session import get_db

PAGE = 20  # cards per column, and how many more "show more" adds

user = require_user("rep")
db = get_db()

head, new = st.columns([4, 1], vertical_alignment="bottom")
head.title("Pipeline")
all_pipelines = pipelines.list_pipelines(db)
if not all_pipelines:
    st.info("No pipeline exists. An admin can create one under Settings › Pipelines & stages.")
    st.stop()
names = {p["id"]: p["name"] for p in all_pipelines}
default = pipelines.default_pipeline_id(db)

f1, f2, f3, f4, f5 = st.columns([1.6, 2, 1.6, 2, 1.2], vertical_alignment="bottom")
pipeline_id = f1.selectbox("Pipeline", list(names), format_func=names.get,
                           index=list(names).index(default), key="board_pipeline")
search = f2.text_input("Search", placeholder="Deal or customer", key="board_search")
owners = auth.owner_choices(db)
if user.role == "rep":
    chosen_owners = [user.id]
    f3.caption("Your deals")
else:
    mine = f5.toggle("My deals", key="board_mine")
    chosen_owners = [user.id] if mine else f3.multiselect(
        "Owner", list(owners), format_func=owners.get, key="board_owners", placeholder="Anyone")
period = f4.date_input("Expected close between", value=(), key="board_period",
                       format="YYYY-MM-DD")
close_from = period[0] if period else None
close_to = (period[1] if len(period) > 1 else period[0]) if period else None
currencies = deals.board_currencies(db, user, pipeline_id, owners=chosen_owners,
                                    search=search, close_from=close_from, close_to=close_to)
o1, o2 = st.columns([1, 3], vertical_alignment="bottom")
order = o1.segmented_control("Cards by", ["amount", "close date"], default="amount",
                             key="board_order", format_func=str.capitalize) or "amount"
currency = None
if currencies:
    # amounts in different currencies are never added together: one currency at a time
    if st.session_state.get("board_currency") not in currencies:
        st.session_state["board_currency"] = next(iter(currencies))
    currency = o2.segmented_control(
        "Currency", list(currencies), key="board_currency",
        format_func=lambda c: f"{c} ({currencies[c]:,})") or next(iter(currencies))
if new.button("New deal", type="primary", icon=":material/add:", width="stretch"):
    st.switch_page("pages/deal.py", query_params={"id": "new", "stage_id": str(
        pipelines.stages_of(db, pipeline_id)[0]["id"])})

per_stage = st.session_state.setdefault("board_per_stage", PAGE)
columns = deals.board(db, user, pipeline_id, owners=chosen_owners, search=search,
                      close_from=close_from, close_to=close_to, per_stage=per_stage,
                      order="amount" if order == "amount" else "close", currency=currency)
stage_kind = {c["id"]: c["kind"] for c in columns}
stage_name = {c["id"]: c["name"] for c in columns}
open_cols = [c for c in columns if c["kind"] == "open"]
m1, m2, m3 = st.columns(3)
m1.metric("Open deals", f"{sum(c['count'] for c in open_cols):,}")
m2.metric(f"Open pipeline ({currency or '—'})", f"{sum(c['total'] for c in open_cols):,.0f}",
          help="Sum of the amounts of the open deals in this currency")
m3.metric(f"Weighted ({currency or '—'})", f"{sum(c['weighted'] for c in open_cols):,.0f}",
          help="Amount × probability, summed over the open deals in this currency")


def remember_move(deal_id: int, to_stage: int) -> None:
    st.session_state["board_pending_move"] = (deal_id, to_stage)


def remember_open(deal_id: int) -> None:
    st.session_state["board_open"] = deal_id


def move(deal_id: int, to_stage: int, reason=None, competitor=None) -> bool:
    try:
        deals.move_deal(db, user, deal_id, to_stage, lost_reason=reason, competitor=competitor)
    except ValidationError as exc:
        st.error(" ".join(exc.errors.values()))
        return False
    except (PermissionDenied, records.NotFound) as exc:
        st.error(str(exc))
        return False
    st.toast(f"Moved to {stage_name[to_stage]}")
    return True


@st.dialog("Why was this deal lost?")
def lost_dialog(deal_id: int, to_stage: int) -> None:
    reason = st.selectbox("Lost reason *", deals.LOST_REASONS, index=None,
                          format_func=lambda r: r.replace("_", " ").capitalize(),
                          key="lost_dialog_reason")
    competitor = st.text_input("Lost to competitor (optional)", key="lost_dialog_competitor")
    ok, cancel = st.columns(2)
    if ok.button("Mark as lost", type="primary", disabled=reason is None):
        if move(deal_id, to_stage, reason, competitor):
            st.rerun()
    if cancel.button("Cancel"):
        st.rerun()


opened = st.session_state.pop("board_open", None)
if opened is not None:
    st.switch_page("pages/deal.py", query_params={"id": str(opened)})
pending = st.session_state.pop("board_pending_move", None)
if pending is not None:
    deal_id, to_stage = pending
    if stage_kind.get(to_stage) == "lost":
        lost_dialog(deal_id, to_stage)
    elif move(deal_id, to_stage):
        st.rerun()  # the board shows the new totals

kanban_board(columns, key="board", on_move=remember_move, on_open=remember_open)
more = sum(c["more"] for c in columns)
if more:
    if st.button(f"Show more cards ({more:,} not shown)", key="board_more"):
        st.session_state["board_per_stage"] = per_stage + PAGE
        st.rerun()

with st.expander("Move a deal without dragging", icon=":material/keyboard:"):
    cards = {c["id"]: f"{c['title']} · {stage_name[col['id']]}" for col in columns
             for c in col["cards"]}
    k1, k2, k3, k4 = st.columns([3, 2, 2, 1], vertical_alignment="bottom")
    chosen = k1.selectbox("Deal", list(cards), format_func=cards.get, index=None,
                          key="plain_deal", placeholder="Choose a deal")
    target = k2.selectbox("Move to", list(stage_name), format_func=stage_name.get, index=None,
                          key="plain_stage", placeholder="Choose a stage")
    reason = competitor = None
    if target is not None and stage_kind[target] == "lost":
        reason = k3.selectbox("Lost reason *", deals.LOST_REASONS, index=None,
                              format_func=lambda r: r.replace("_", " ").capitalize(),
                              key="plain_reason")
        competitor = st.text_input("Lost to competitor (optional)", key="plain_competitor")
    if k4.button("Move", key="plain_move", disabled=chosen is None or target is None):
        if move(chosen, target, reason, competitor):
            for key in ("plain_deal", "plain_stage", "plain_reason", "plain_competitor"):
                st.session_state.pop(key, None)
            st.rerun()
others = {c: n for c, n in currencies.items() if c != currency}
if others:
    st.caption("Also on this board, in other currencies: " +
               ", ".join(f"{n:,} in {c}" for c, n in others.items()) + ". Pick a currency above.")
st.caption(f"Won and lost columns show the last {deals.CLOSED_DAYS} days. Rotting: no activity "
           "for longer than the stage allows. Click a card to open the deal, edit it and log "
           "an activity.")
