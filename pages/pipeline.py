import streamlit as st

from crm import auth, deals, i18n, pipelines, records, views
from crm.auth import PermissionDenied
from crm.fields import ValidationError
from crm.i18n import N_, gettext as _
from crm.ui.guard import require_user
from crm.ui.kanban import kanban_board
from crm.ui.market import competitor_picker
from crm.ui.session import get_db
from crm.ui.tables import date_range
from crm.ui.text import md_escape
from crm.ui.views import ViewBar

PAGE = 20  # cards per column, and how many more "show more" adds
LOST_LABEL = deals.DEALS.spec["lost_reason"].choice_label

user = require_user("rep")
db = get_db()

# One header row (title, the three numbers, New deal) and one filter row, so the board starts
# high enough that a 1400 x 900 screen shows it with all its columns.
head, m1, m2, m3, new = st.columns([2.2, 1, 1.5, 1.5, 1.3], vertical_alignment="bottom")
head.title(_("Pipeline"))
all_pipelines = pipelines.list_pipelines(db)
if not all_pipelines:
    st.info(_("No pipeline exists. An admin can create one under Settings › Pipelines & "
              "stages."))
    st.stop()
names = {p["id"]: p["name"] for p in all_pipelines}
default = pipelines.default_pipeline_id(db)

owners = auth.owner_choices(db)
ORDERS = {"amount": N_("Amount"), "close date": N_("Close date")}


def group_label(name: str) -> str:
    return _("Stage") if name == "stage_id" else deals.DEALS.spec[name].shown_label


def apply_view(config: dict | None) -> None:
    """A saved board view (None: the standard board) into the board's widgets."""
    config, state = config or {}, st.session_state
    wanted = config.get("filters") or {}
    state["board_group"] = config.get("group_by") or "stage_id"
    state["board_search"] = config.get("search") or ""
    state["board_mine"] = bool(config.get("mine"))
    state["board_owners"] = [o for o in wanted.get("owner_id") or [] if o in owners]
    start, end = wanted.get("expected_close_date") or (None, None)
    state["board_period"] = (start, end) if start and end else (start,) if start else ()
    state["board_period:jalali:from"] = i18n.format_date(start) if start else ""
    state["board_period:jalali:to"] = i18n.format_date(end) if end else ""
    state["board_order"] = "close date" if config.get("sort") == "expected_close_date" \
        else "amount"


bar = ViewBar(deals.DEALS, user, views.BOARD, "board", apply=apply_view, probe="board_search",
              compact=True)
bar.start()
f1, f2, f3, fv, f4, f5 = st.columns([1.3, 1.5, 2.3, 1.5, 1, 0.55], vertical_alignment="bottom")
pipeline_id = f1.selectbox(_("Pipeline"), list(names), format_func=names.get,
                           index=list(names).index(default), key="board_pipeline")
bar.picker(fv)
search = f2.text_input(_("Search"), placeholder=_("Deal or customer"), key="board_search")
more_filters = f4.popover(_("Filters"), icon=":material/filter_list:", width="stretch",
                          key="board_filters")
groups = deals.group_fields()  # read now: an admin's custom choice fields are among them
if st.session_state.get("board_group") not in groups:  # a field deleted meanwhile
    st.session_state["board_group"] = "stage_id"
group_by = more_filters.selectbox(
    _("Group by"), groups, key="board_group", format_func=group_label,
    help=_("Columns by stage, or by any single-choice field of the deals: dropping a card on "
           "a column then sets that field"))
mine = False
if user.role == "rep":
    chosen_owners = [user.id]
    more_filters.caption(_("Your deals"))
else:
    mine = more_filters.toggle(_("My deals"), key="board_mine")
    chosen_owners = [user.id] if mine else more_filters.multiselect(
        _("Owner"), list(owners), format_func=owners.get, key="board_owners",
        placeholder=_("Anyone"))
with more_filters:
    close_from, close_to = date_range(deals.DEALS.spec["expected_close_date"], "board_period")
period = close_from or close_to
order = more_filters.segmented_control(
    _("Cards by"), list(ORDERS), key="board_order",
    format_func=lambda o: _(ORDERS[o])) or "amount"
active = [name for name, on in [
    (_("owner"), user.role != "rep" and chosen_owners),
    (_("expected close"), period),
    (_("cards by close date"), order != "amount")] if on]
bar.manage(f5, {
    "group_by": group_by, "search": search, "mine": mine,
    "filters": {"owner_id": [] if mine or user.role == "rep" else chosen_owners,
                "expected_close_date": (close_from, close_to)},
    "sort": "amount" if order == "amount" else "expected_close_date",
    "descending": order == "amount"})
currencies = deals.board_currencies(db, user, pipeline_id, owners=chosen_owners,
                                    search=search, close_from=close_from, close_to=close_to)
currency = None
if currencies:
    # amounts in different currencies are never added together: one currency at a time
    if st.session_state.get("board_currency") not in currencies:
        st.session_state["board_currency"] = next(iter(currencies))
    currency = f3.segmented_control(
        _("Currency"), list(currencies), key="board_currency",
        format_func=lambda c: f"{md_escape(c)} ({i18n.number(currencies[c])})"
    ) or next(iter(currencies))
notes = [_("Grouped by {field} (under Filters).").format(field=group_label(group_by))
         ] if group_by != "stage_id" else []
if active:
    notes.append(_("Filtered by {filters} (under Filters).").format(filters=", ".join(active)))
if notes:
    st.caption(" ".join(notes))
bar.notes()
if new.button(i18n.entity_text(deals.DEALS, "New {label}"), type="primary",
              icon=":material/add:", width="stretch"):
    st.switch_page("pages/deal.py", query_params={"id": "new", "stage_id": str(
        pipelines.stages_of(db, pipeline_id)[0]["id"])})

per_stage = st.session_state.setdefault("board_per_stage", PAGE)
columns = deals.board(db, user, pipeline_id, owners=chosen_owners, search=search,
                      close_from=close_from, close_to=close_to, per_stage=per_stage,
                      order="amount" if order == "amount" else "close", currency=currency,
                      group_by=group_by)
stage_kind = {c["id"]: c["kind"] for c in columns}
stage_name = {c["id"]: c["name"] for c in columns}
# The version of each card as the user last saw it (the previous run drew the screen they
# acted on): a move sends it, so a deal changed by someone else meanwhile is not overridden.
seen = st.session_state.get("board_seen_versions", {})
current = {card["id"]: card for col in columns for card in col["cards"]}
st.session_state["board_seen_versions"] = {i: card["version"] for i, card in current.items()}
open_cols = [c for c in columns if c["kind"] == "open"]
shown_currency = md_escape(currency) if currency else "—"
m1.metric(_("Open deals"), i18n.number(sum(c["count"] for c in open_cols)))
open_total = sum(c["total"] for c in open_cols)
weighted_total = sum(c["weighted"] for c in open_cols)
m2.metric(_("Open pipeline ({currency})").format(currency=shown_currency),
          i18n.compact(open_total),
          help=_("Sum of the amounts of the open deals in this currency: {amount}").format(
              amount=i18n.number(open_total)))
m3.metric(_("Weighted ({currency})").format(currency=shown_currency),
          i18n.compact(weighted_total),
          help=_("Amount × probability, summed over the open deals in this currency: "
                 "{amount}").format(amount=i18n.number(weighted_total)))


def remember_move(deal_id: int, to_stage: int, version: int | None) -> None:
    st.session_state["board_pending_move"] = (deal_id, to_stage, version)


def remember_open(deal_id: int) -> None:
    st.session_state["board_open"] = deal_id


def moved_meanwhile(title) -> str:
    return _("**{title}** was changed or moved by someone else meanwhile, so it was not moved; "
             "the board now shows where it is.").format(title=md_escape(title))


def move(deal_id: int, to_stage, version: int | None, reason=None,
         competitor=None) -> bool:
    """Moves the deal to the column (a stage, or a choice of the field the board is grouped
    by) unless it changed since the user saw it (version). On such a conflict it leaves a
    notice and reruns, so the board shows where the deal is now."""
    try:
        if group_by == "stage_id":
            deals.move_deal(db, user, deal_id, to_stage, lost_reason=reason,
                            competitor=competitor, expected_version=version)
        else:
            deals.set_group_field(db, user, deal_id, group_by,
                                  None if to_stage == deals.NO_VALUE else to_stage, version)
    except records.WriteConflict as exc:
        st.error(md_escape(exc))
        return False
    except records.ConflictError as exc:
        st.session_state["board_notice"] = moved_meanwhile(exc.current.get("title"))
        st.rerun()
    except ValidationError as exc:
        st.error(md_escape(" ".join(exc.errors.values())))
        return False
    except (PermissionDenied, records.NotFound) as exc:
        st.error(md_escape(exc))
        return False
    st.toast(_("Moved to {stage}").format(stage=md_escape(stage_name[to_stage])))
    return True


def lost_dialog(deal_id: int, to_stage: int, version: int | None) -> None:
    @st.dialog(_("Why was this deal lost?"))
    def ask() -> None:
        reason = st.selectbox(_("Lost reason *"), deals.LOST_REASONS, index=None,
                              format_func=LOST_LABEL, key="lost_dialog_reason")
        competitor = competitor_picker(db, user, _("Lost to competitor (optional)"),
                                       "lost_dialog_competitor")
        ok, cancel = st.columns(2)
        if ok.button(_("Mark as lost"), type="primary", disabled=reason is None,
                     key="lost_dialog_ok"):
            if move(deal_id, to_stage, version, reason, competitor):
                st.rerun()
        if cancel.button(_("Cancel")):
            st.rerun()

    ask()


notice = st.session_state.pop("board_notice", None)
if notice:
    st.warning(notice, icon=":material/sync_problem:")
opened = st.session_state.pop("board_open", None)
if opened is not None:
    st.switch_page("pages/deal.py", query_params={"id": str(opened)})
pending = st.session_state.pop("board_pending_move", None)
if pending is not None:
    deal_id, to_stage, version = pending
    if version is not None and deal_id in current and current[deal_id]["version"] != version:
        # stale card: say so now rather than after asking for a lost reason
        st.warning(moved_meanwhile(current[deal_id]["title"]), icon=":material/sync_problem:")
    elif stage_kind.get(to_stage) == "lost":
        lost_dialog(deal_id, to_stage, version)
    elif move(deal_id, to_stage, version):
        st.rerun()  # the board shows the new totals

kanban_board(columns, key="board", on_move=remember_move, on_open=remember_open, height=600)
more = sum(c["more"] for c in columns)
if more:
    if st.button(_("Show more cards ({count} not shown)").format(count=i18n.number(more)),
                 key="board_more"):
        st.session_state["board_per_stage"] = per_stage + PAGE
        st.rerun()

PLAIN_KEYS = ("plain_deal", "plain_stage", "plain_reason", "plain_competitor")
if st.session_state.pop("plain_moved", False):
    # set (not dropped) before the widgets exist, so the browser shows them empty again too
    for key in PLAIN_KEYS:
        st.session_state[key] = None
with st.expander(_("Move a deal without dragging"), icon=":material/keyboard:"):
    cards = {c["id"]: f"{c['title']} · {stage_name[col['id']]}" for col in columns
             for c in col["cards"]}
    k1, k2, k3, k4 = st.columns([3, 2, 2, 1], vertical_alignment="bottom")
    chosen = k1.selectbox(_("Deal"), list(cards), format_func=cards.get, index=None,
                          key="plain_deal", placeholder=_("Choose a deal"))
    if st.session_state.get("plain_stage") not in stage_name:  # the grouping changed
        st.session_state["plain_stage"] = None
    target = k2.selectbox(_("Move to"), list(stage_name), format_func=stage_name.get,
                          index=None, key="plain_stage",
                          placeholder=_("Choose a stage") if group_by == "stage_id"
                          else _("Choose a column"))
    reason = competitor = None
    if target is not None and stage_kind[target] == "lost":
        reason = k3.selectbox(_("Lost reason *"), deals.LOST_REASONS, index=None,
                              format_func=LOST_LABEL, key="plain_reason")
        competitor = competitor_picker(db, user, _("Lost to competitor (optional)"),
                                       "plain_competitor")
    if k4.button(_("Move"), key="plain_move", disabled=chosen is None or target is None):
        if move(chosen, target, seen.get(chosen), reason, competitor):
            st.session_state["plain_moved"] = True
            st.rerun()
others = {c: n for c, n in currencies.items() if c != currency}
if others:
    st.caption(_("Also on this board, in other currencies: {list}. Pick a currency above.").format(
        list=", ".join(_("{count} in {currency}").format(count=i18n.number(n),
                                                          currency=md_escape(c))
                       for c, n in others.items())))
if group_by == "stage_id":
    st.caption(_("Won and lost columns show the last {days} days. Rotting: no activity for "
                 "longer than the stage allows. Click a card to open the deal, edit it and log "
                 "an activity.").format(days=i18n.number(deals.CLOSED_DAYS)))
else:
    st.caption(_("The open deals of the pipeline, one column per {field}. Dropping a card on a "
                 "column sets the deal's {field}. Click a card to open the deal.").format(
        field=group_label(group_by)))
