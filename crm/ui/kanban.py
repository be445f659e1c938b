"""Drag-and-drop Kanban board for the deals pipeline (Streamlit custom component v2).

Inline HTML/CSS/JS through ``st.components.v2.component``: no build step, no iframe. The
board is mounted in a shadow root (``isolate_styles=True``) inside the app page, so browser
tests find it with ordinary (shadow-piercing) CSS locators: ``[data-stage-id="3"]``,
``[data-deal-id="17"]``.

Events come back as v2 *trigger values* ("moved" = {deal, to, version}, "opened" = {deal}).
Trigger values are one-shot: Streamlit resets them after the run they arrive in, and runs
their ``on_<event>_change`` callback once per event, before the script body. We act only
inside those callbacks, so a later rerun never delivers the same drop again.

All user text is set with ``textContent`` / ``setAttribute``; nothing from ``columns`` is
ever parsed as HTML. AppTest cannot click custom components (they are ``UnknownElement``):
pages must keep a plain-Streamlit way to move a deal too.

Columns share the board's width down to a narrow minimum (six fit beside the sidebar on a
1400 px screen); more stages scroll sideways. While a card is dragged the board scrolls by
itself near its left and right edges, and Won/Lost columns out of sight get drop zones pinned
to its right edge (``[data-drop-stage-id]``).
"""
from __future__ import annotations

import math
from typing import Any, Callable

import streamlit as st

from crm import i18n
from crm.i18n import gettext as _, ngettext

_CSS = r"""
:host { display: block; }
.kb-wrap {
  position: relative;
  --kb-text: var(--st-text-color, #31333f);
  --kb-muted: rgba(49, 51, 63, 0.62);
  --kb-border: var(--st-border-color-light, rgba(49, 51, 63, 0.12));
  --kb-col-bg: var(--st-secondary-background-color, #f0f2f6);
  --kb-card-bg: var(--st-background-color, #ffffff);
  --kb-primary: var(--st-primary-color, #ff4b4b);
  --kb-radius: var(--st-base-radius, 0.5rem);
}
.kb-board {
  box-sizing: border-box;
  display: flex;
  gap: 0.5rem;
  align-items: stretch;
  overflow-x: auto;
  overflow-y: hidden;
  scrollbar-width: thin;
  padding: 0 0 0.5rem 0;
  font-family: var(--st-font, inherit);
  font-size: 0.875rem;
  line-height: 1.35;
  color: var(--kb-text);
}
.kb-board *, .kb-board *::before, .kb-board *::after { box-sizing: border-box; }
.kb-col {
  /* Columns share the width: six of them fit beside the sidebar on a 1400 px screen.
     More stages than fit scroll sideways (and scroll by themselves while dragging). */
  flex: 1 1 0;
  max-width: 26rem;
  min-width: 8.75rem;
  container-type: inline-size;
  display: flex;
  flex-direction: column;
  min-height: 0;
  background: var(--kb-col-bg);
  border: 1px solid transparent;
  border-radius: var(--kb-radius);
  transition: background-color 0.12s, border-color 0.12s, box-shadow 0.12s;
}
.kb-col.kb-won { background: var(--st-green-background-color, rgba(33, 195, 84, 0.1)); }
.kb-col.kb-lost { background: var(--st-gray-background-color, rgba(49, 51, 63, 0.08)); }
.kb-won .kb-head { box-shadow: inset 0 3px 0 var(--st-green-color, #21c354); }
.kb-lost .kb-head { box-shadow: inset 0 3px 0 var(--st-gray-color, #a3a8b8); }
.kb-lost .kb-name, .kb-lost .kb-card-title { color: var(--kb-muted); }
.kb-lost .kb-card { background: rgba(255, 255, 255, 0.7); }
.kb-col.kb-over {
  border-color: var(--kb-primary);
  box-shadow: inset 0 0 0 1px var(--kb-primary);
}
.kb-head {
  padding: 0.5rem 0.6rem 0.45rem 0.6rem;
  border-radius: var(--kb-radius) var(--kb-radius) 0 0;
  border-bottom: 1px solid var(--kb-border);
}
.kb-title-row { display: flex; align-items: center; gap: 0.5rem; }
.kb-name {
  flex: 1 1 auto;
  min-width: 0;
  font-weight: 600;
  font-size: 0.95rem;
  overflow: hidden;
  text-overflow: ellipsis;
  white-space: nowrap;
}
.kb-prob {
  flex: 0 0 auto;
  font-size: 0.72rem;
  font-weight: 600;
  padding: 0.05rem 0.45rem;
  border-radius: 999px;
  color: var(--kb-muted);
  background: var(--kb-card-bg);
  border: 1px solid var(--kb-border);
}
.kb-won .kb-prob { color: var(--st-green-text-color, #158237); }
.kb-stats {
  margin-top: 0.2rem;
  font-size: 0.78rem;
  color: var(--kb-muted);
}
.kb-stats > span { white-space: nowrap; }
.kb-stats .kb-total { color: var(--kb-text); font-weight: 600; }
.kb-cards {
  flex: 1 1 auto;
  min-height: 0;
  overflow-y: auto;
  scrollbar-width: thin;
  padding: 0.4rem;
  display: flex;
  flex-direction: column;
  gap: 0.4rem;
}
.kb-card {
  background: var(--kb-card-bg);
  border: 1px solid var(--kb-border);
  border-left: 3px solid var(--kb-border);
  border-radius: calc(var(--kb-radius) * 0.75);
  padding: 0.5rem 0.6rem;
  cursor: grab;
  box-shadow: 0 1px 2px rgba(0, 0, 0, 0.04);
  user-select: none;
  transition: box-shadow 0.12s, border-color 0.12s, opacity 0.12s;
}
.kb-card:hover { box-shadow: 0 2px 6px rgba(0, 0, 0, 0.09); }
.kb-card:focus-visible { outline: 2px solid var(--kb-primary); outline-offset: 1px; }
.kb-card.kb-rotting { border-left-color: var(--st-orange-color, #ff8700); }
.kb-card.kb-dragging { opacity: 0.45; }
.kb-card.kb-pending { opacity: 0.6; cursor: progress; }
.kb-card-title {
  font-weight: 600;
  overflow-wrap: anywhere;
}
.kb-line {
  display: flex;
  flex-wrap: wrap;
  column-gap: 0.5rem;
  justify-content: space-between;
  margin-top: 0.15rem;
  font-size: 0.8rem;
  color: var(--kb-muted);
}
.kb-line > span { min-width: 0; overflow: hidden; text-overflow: ellipsis; white-space: nowrap; }
.kb-line > .kb-customer, .kb-line > .kb-owner { flex: 1 1 auto; }
.kb-amount {
  color: var(--kb-text);
  font-weight: 600;
  font-variant-numeric: tabular-nums;
  flex: 0 0 auto;
  margin-left: auto;
}
@container (max-width: 12rem) {
  .kb-card { padding: 0.4rem 0.45rem; }
  .kb-name { font-size: 0.875rem; }
  .kb-stats { font-size: 0.72rem; }
  .kb-card-title { font-size: 0.82rem; }
  .kb-line { font-size: 0.74rem; }
}
.kb-badges { display: flex; flex-wrap: wrap; gap: 0.25rem; margin-top: 0.35rem; }
.kb-badges:empty { display: none; }
.kb-badge {
  font-size: 0.7rem;
  font-weight: 600;
  line-height: 1.4;
  padding: 0 0.4rem;
  border-radius: 999px;
}
.kb-badge-rotting {
  color: var(--st-orange-text-color, #b35c00);
  background: var(--st-orange-background-color, rgba(255, 135, 0, 0.12));
}
.kb-badge-overdue {
  color: var(--st-red-text-color, #bd4043);
  background: var(--st-red-background-color, rgba(255, 43, 43, 0.1));
}
.kb-next {
  margin-top: 0.3rem;
  font-size: 0.76rem;
  color: var(--kb-muted);
  overflow-wrap: anywhere;
}
.kb-more, .kb-empty {
  font-size: 0.78rem;
  color: var(--kb-muted);
  text-align: center;
  padding: 0.35rem 0;
}
/* While a card is dragged, Won and Lost columns scrolled out of sight get drop zones pinned
   to the right edge of the board. */
.kb-dock {
  position: absolute;
  top: 0.5rem;
  right: 0.5rem;
  z-index: 2;
  display: none;
  flex-direction: column;
  gap: 0.5rem;
  width: 9rem;
}
.kb-wrap.kb-drag-active .kb-dock { display: flex; }
.kb-zone {
  box-sizing: border-box;
  padding: 1.1rem 0.6rem;
  font-family: var(--st-font, inherit);
  font-size: 0.875rem;
  border: 2px dashed var(--kb-muted);
  border-radius: var(--kb-radius);
  background: var(--kb-card-bg);
  box-shadow: 0 4px 14px rgba(0, 0, 0, 0.14);
  font-weight: 600;
  text-align: center;
  color: var(--kb-text);
}
.kb-zone[hidden] { display: none; }
.kb-zone.kb-won { border-color: var(--st-green-color, #21c354); }
.kb-zone.kb-over { border-style: solid; border-color: var(--kb-primary); }
.kb-empty {
  border: 1px dashed var(--kb-border);
  border-radius: calc(var(--kb-radius) * 0.75);
  padding: 1rem 0.5rem;
}
"""

_JS = r"""
const EDGE = 56;  // px: dragging this close to the board's left or right edge scrolls it

function el(tag, cls, text) {
  const node = document.createElement(tag);
  if (cls) node.className = cls;
  if (text !== undefined && text !== null && text !== "") node.textContent = String(text);
  return node;
}

export default function (component) {
  const { data, parentElement, setTriggerValue } = component;
  const columns = (data && Array.isArray(data.columns)) ? data.columns : [];
  const height = (data && Number(data.height)) || 620;
  // every word and number arrives formatted in the user's language (Python, with Babel)
  const text = (data && data.text) || {};

  // The function runs again whenever `data` changes (its cleanup is not called in
  // between), so rebuild from scratch and carry the scroll positions over.
  const oldWrap = parentElement.querySelector(".kb-wrap");
  const old = oldWrap && oldWrap.querySelector(".kb-board");
  const scroll = { left: 0, cols: {} };
  if (old) {
    scroll.left = old.scrollLeft;
    old.querySelectorAll(".kb-col").forEach((c) => {
      const list = c.querySelector(".kb-cards");
      if (list) scroll.cols[c.dataset.stageId] = list.scrollTop;
    });
  }
  if (oldWrap) oldWrap.remove();

  const wrap = el("div", "kb-wrap");
  const board = el("div", "kb-board");
  // never taller than the window, so a column's top and bottom can be seen together
  board.style.height = "min(" + height + "px, calc(100vh - 2rem))";
  board.setAttribute("role", "list");
  board.setAttribute("aria-label", text.board || "");
  // right to left (Persian): the columns run from the right, as the rest of the page does
  wrap.setAttribute("dir", data && data.dir === "rtl" ? "rtl" : "ltr");
  const dock = el("div", "kb-dock");
  dock.setAttribute("aria-hidden", "true");

  let drag = null;  // {deal, version, from, card} while a card is being dragged
  let pointerX = null;  // last x of the dragged card over the board, for auto-scroll
  let scrolling = 0;    // requestAnimationFrame id of the auto-scroll loop
  const zones = [];     // [{zone, colEl}] the dock's drop zones for closed columns

  function autoScroll() {
    scrolling = 0;
    if (!drag || pointerX === null) return;
    const r = board.getBoundingClientRect();
    let step = 0;
    if (pointerX < r.left + EDGE) step = -Math.ceil((r.left + EDGE - pointerX) / 4);
    else if (pointerX > r.right - EDGE) step = Math.ceil((pointerX - (r.right - EDGE)) / 4);
    if (step && board.scrollWidth > board.clientWidth) {
      board.scrollLeft += step;
      scrolling = requestAnimationFrame(autoScroll);
    }
  }
  function fullyVisible(colEl) {
    const b = board.getBoundingClientRect();
    const c = colEl.getBoundingClientRect();
    return c.left >= b.left - 1 && c.right <= b.right + 1;
  }
  function updateDock() {
    for (const { zone, colEl } of zones) {
      zone.hidden = !drag || drag.from === colEl.dataset.stageId || fullyVisible(colEl);
    }
  }
  function endDrag() {
    drag = null;
    pointerX = null;
    if (scrolling) cancelAnimationFrame(scrolling);
    scrolling = 0;
    wrap.classList.remove("kb-drag-active");
    wrap.querySelectorAll(".kb-over").forEach((n) => n.classList.remove("kb-over"));
  }
  board.addEventListener("dragover", (e) => {
    if (!drag) return;
    pointerX = e.clientX;
    if (!scrolling) scrolling = requestAnimationFrame(autoScroll);
  });
  board.addEventListener("scroll", () => { if (drag) updateDock(); }, { passive: true });

  // A column (or its dock zone) accepts a card from another column.
  function dropTarget(target, stageId, list, col) {
    target.addEventListener("dragenter", (e) => {
      if (!drag || drag.from === stageId) return;
      e.preventDefault();
      target.classList.add("kb-over");
    });
    target.addEventListener("dragover", (e) => {
      if (!drag || drag.from === stageId) return;
      e.preventDefault();
      if (e.dataTransfer) e.dataTransfer.dropEffect = "move";
      target.classList.add("kb-over");
    });
    target.addEventListener("dragleave", (e) => {
      if (e.relatedTarget && target.contains(e.relatedTarget)) return;
      target.classList.remove("kb-over");
    });
    target.addEventListener("drop", (e) => {
      e.preventDefault();
      e.stopPropagation();
      const d = drag;
      endDrag();
      if (!d || d.from === stageId) return;
      // Optimistic: show the card in its new column until Python re-renders the board.
      d.card.classList.remove("kb-dragging");
      d.card.classList.add("kb-pending");
      const empty = list.querySelector(".kb-empty");
      if (empty) empty.remove();
      list.insertBefore(d.card, list.querySelector(".kb-more"));
      // The version the card was drawn with: Python refuses the move when the deal has
      // changed since (someone else moved or edited it) instead of overriding that change.
      setTriggerValue("moved", { deal: d.deal, to: col.id, version: d.version });
    });
  }

  for (const col of columns) {
    const stageId = String(col.id);
    const kind = col.kind === "won" || col.kind === "lost" ? col.kind : "open";
    const colEl = el("section", "kb-col kb-" + kind);
    colEl.setAttribute("data-stage-id", stageId);
    colEl.setAttribute("data-kind", kind);
    colEl.setAttribute("role", "listitem");
    colEl.setAttribute("aria-label", String(col.name));

    const head = el("header", "kb-head");
    const titleRow = el("div", "kb-title-row");
    const name = el("span", "kb-name", col.name);
    name.setAttribute("title", String(col.name));
    titleRow.appendChild(name);
    // a column of a board grouped by a choice field has no probability
    if (col.probability_text) titleRow.appendChild(el("span", "kb-prob", col.probability_text));
    head.appendChild(titleRow);

    const count = Number(col.count) || 0;
    const stats = el("div", "kb-stats");
    const countEl = el("span", "kb-count", col.count_text);
    const totalEl = el("span", "kb-total", col.total_text);
    const weightedEl = el("span", "kb-weighted", col.weighted_text);
    countEl.setAttribute("data-value", String(count));
    totalEl.setAttribute("data-value", String(Number(col.total) || 0));
    weightedEl.setAttribute("data-value", String(Number(col.weighted) || 0));
    stats.append(countEl, document.createTextNode(" \u00b7 "), totalEl,
                 document.createTextNode(" \u00b7 "), weightedEl);
    head.appendChild(stats);
    colEl.appendChild(head);

    const list = el("div", "kb-cards");
    const cards = Array.isArray(col.cards) ? col.cards : [];
    for (const card of cards) list.appendChild(renderCard(card));
    if (!cards.length) list.appendChild(el("div", "kb-empty", text.empty));
    const more = Number(col.more) || 0;
    if (more > 0) list.appendChild(el("div", "kb-more", col.more_text));
    colEl.appendChild(list);
    dropTarget(colEl, stageId, list, col);

    if (kind !== "open") {
      const zone = el("div", "kb-zone kb-" + kind, col.name);
      zone.setAttribute("data-drop-stage-id", stageId);
      zone.hidden = true;
      dropTarget(zone, stageId, list, col);
      dock.appendChild(zone);
      zones.push({ zone, colEl });
    }

    list.scrollTop = scroll.cols[stageId] || 0;
    board.appendChild(colEl);
    // restore after layout
    requestAnimationFrame(() => { list.scrollTop = scroll.cols[stageId] || 0; });

    function renderCard(card) {
      const c = el("article", "kb-card" + (card.rotting ? " kb-rotting" : ""));
      const title = String(card.title ?? "");
      c.setAttribute("data-deal-id", String(card.id));
      c.setAttribute("draggable", "true");
      c.setAttribute("tabindex", "0");
      c.setAttribute("role", "button");
      c.setAttribute("aria-label", title);
      c.setAttribute("title", title);

      c.appendChild(el("div", "kb-card-title", title));
      const l1 = el("div", "kb-line");
      l1.appendChild(el("span", "kb-customer", card.customer));
      l1.appendChild(el("span", "kb-amount", card.amount_text));
      c.appendChild(l1);
      const l2 = el("div", "kb-line");
      l2.appendChild(el("span", "kb-owner", card.owner));
      l2.appendChild(el("span", "kb-days", card.days_text));
      c.appendChild(l2);

      const badges = el("div", "kb-badges");
      if (card.rotting) badges.appendChild(el("span", "kb-badge kb-badge-rotting", text.rotting));
      if (card.overdue) badges.appendChild(el("span", "kb-badge kb-badge-overdue", text.overdue));
      c.appendChild(badges);
      if (card.next_step) c.appendChild(el("div", "kb-next", card.next_step));

      c.addEventListener("dragstart", (e) => {
        const version = Number.isInteger(card.version) ? card.version : null;
        drag = { deal: card.id, version, from: stageId, card: c };
        c.classList.add("kb-dragging");
        if (e.dataTransfer) {
          e.dataTransfer.effectAllowed = "move";
          e.dataTransfer.setData("text/plain", String(card.id));
        }
        // after the browser has taken the drag image: changing layout inside dragstart
        // can cancel the drag
        setTimeout(() => {
          if (!drag) return;
          updateDock();
          wrap.classList.add("kb-drag-active");
        }, 0);
      });
      c.addEventListener("dragend", () => {
        c.classList.remove("kb-dragging");
        endDrag();
      });
      const open = () => setTriggerValue("opened", { deal: card.id });
      c.addEventListener("click", open);
      c.addEventListener("keydown", (e) => {
        if (e.key === "Enter" || e.key === " ") { e.preventDefault(); open(); }
      });
      return c;
    }
  }

  wrap.appendChild(board);
  wrap.appendChild(dock);
  parentElement.appendChild(wrap);
  board.scrollLeft = scroll.left;
}
"""

_board = st.components.v2.component("crm_kanban_board", css=_CSS, js=_JS)


def _int(value: Any, default: int = 0) -> int:
    try:
        return int(value)
    except (TypeError, ValueError):
        return default


def _num(value: Any) -> float:
    """Decimal (DuckDB DECIMAL), None, NaN -> a JSON-safe float."""
    try:
        f = float(value)
    except (TypeError, ValueError):
        return 0.0
    return f if math.isfinite(f) else 0.0


def _text(value: Any) -> str:
    return "" if value is None else str(value)


def _version(value: Any) -> int | None:
    return None if value is None else _int(value, None)


def _amount(card: dict) -> str:
    value = _num(card.get("amount"))
    return i18n.money(value, _text(card.get("currency")), 0 if value == int(value) else 2)


def _column_id(value: Any) -> int | str:
    """A stage's id, or a choice (a board grouped by a choice field)."""
    return value if isinstance(value, str) else _int(value)


def _payload(columns: list[dict], height: int, rev: int) -> dict:
    out = []
    for col in columns:
        kind = col.get("kind")
        count, more = _int(col.get("count")), max(0, _int(col.get("more")))
        currency = _text(col.get("currency"))
        out.append({
            "count_text": ngettext("{count} deal", "{count} deals", count).format(
                count=i18n.number(count)),
            "total_text": i18n.money(_num(col.get("total")), currency, 0),
            "weighted_text": _("weighted {amount}").format(
                amount=i18n.number(_num(col.get("weighted")))),
            "more_text": _("+ {count} more").format(count=i18n.number(more)),
            "probability_text": "" if col.get("probability") is None else
            i18n.percent(_int(col.get("probability")) / 100),
            "id": _column_id(col.get("id")),
            "name": _text(col.get("name")),
            "kind": kind if kind in ("open", "won", "lost") else "open",
            "count": _int(col.get("count")),
            "total": _num(col.get("total")),
            "weighted": _num(col.get("weighted")),
            "currency": _text(col.get("currency")),
            "probability": _int(col.get("probability")),
            "more": max(0, _int(col.get("more"))),
            "cards": [{
                "id": _int(card.get("id")),
                "title": _text(card.get("title")),
                "customer": _text(card.get("customer")),
                "amount": _num(card.get("amount")),
                "currency": _text(card.get("currency")),
                "owner": _text(card.get("owner")),
                "days_in_stage": _int(card.get("days_in_stage")),
                "rotting": bool(card.get("rotting")),
                "overdue": bool(card.get("overdue")),
                "next_step": _text(card.get("next_step")),
                "version": _version(card.get("version")),
                "amount_text": _amount(card),
                "days_text": ngettext("{days} d in stage", "{days} d in stage",
                                      _int(card.get("days_in_stage"))).format(
                    days=i18n.number(_int(card.get("days_in_stage")))),
            } for card in col.get("cards") or []],
        })
    return {"columns": out, "height": int(height), "rev": rev,
            "dir": "rtl" if i18n.is_rtl() else "ltr",
            "text": {"board": _("Deals pipeline"), "empty": _("No deals"),
                     "rotting": _("rotting"), "overdue": _("task overdue")}}


def kanban_board(columns: list[dict], key: str,
                 on_move: Callable[[int, int, int | None], Any] | None = None,
                 on_open: Callable[[int], Any] | None = None, height: int = 620) -> None:
    """Mounts the board. columns: [{"id": int (a stage) or str (a choice), "name": str, "kind": "open"|"won"|"lost",
       "count": int, "total": float, "weighted": float, "currency": str,
       "probability": int or None (no badge),
       "cards": [{"id": int, "title": str, "customer": str, "amount": float, "currency": str,
                  "owner": str, "days_in_stage": int, "rotting": bool, "overdue": bool,
                  "next_step": str, "version": int}],
       "more": int}]   # more = how many cards of this column are not shown
    on_move(deal_id: int, to_column_id: int | str, version: int | None) is called when a card
    is dropped on another column; version is the card's "version" as drawn (None if it had none):
    pass it on as the expected version, so a deal changed meanwhile is not overridden;
    on_open(deal_id: int) when a card is clicked. Returns nothing.

    Both callbacks run as Streamlit widget callbacks, i.e. before the script body of the
    rerun the event caused, exactly once per event. Do not call st.rerun() / st.switch_page()
    in them; set st.session_state and act on it in the body instead. Not usable inside
    st.form (v2 ignores trigger values in forms)."""
    rev_key = f"_kanban_rev:{key}"
    # the browser sends the column's id back as it got it; looked up as text
    column_ids = {str(_column_id(c.get("id"))): _column_id(c.get("id")) for c in columns}

    def _event(name: str) -> dict | None:
        state = st.session_state.get(key)
        value = state.get(name) if state is not None else None
        return value if isinstance(value, dict) else None

    def _moved() -> None:
        # Bump the revision so the board re-renders even when the caller refuses the move
        # and the data is unchanged (the browser shows the card in its new column already).
        st.session_state[rev_key] = st.session_state.get(rev_key, 0) + 1
        value = _event("moved")
        if value is None or on_move is None:
            return
        deal, to = _int(value.get("deal"), -1), column_ids.get(str(value.get("to")))
        if deal >= 0 and to is not None:
            on_move(deal, to, _version(value.get("version")))

    def _opened() -> None:
        value = _event("opened")
        if value is None or on_open is None:
            return
        deal = _int(value.get("deal"), -1)
        if deal >= 0:
            on_open(deal)

    _board(key=key, data=_payload(columns, height, st.session_state.get(rev_key, 0)),
           height="content", on_moved_change=_moved, on_opened_change=_opened)
