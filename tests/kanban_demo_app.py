"""Demo page for the Kanban browser test (tests/test_kanban_e2e.py): fake deals in
st.session_state, no database. Run: streamlit run tests/kanban_demo_app.py
(`?stages=many` adds six more open stages and a Lost stage: more than a screen is wide)."""
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # `crm` from the repo root

import streamlit as st  # noqa: E402

from crm.ui.kanban import kanban_board  # noqa: E402

st.set_page_config(page_title="Kanban demo", layout="wide")

XSS = "<img src=x onerror=alert(1)>"


def _card(id_, title, customer, amount, owner, days, rotting=False, overdue=False, next_step=""):
    return {"id": id_, "title": title, "customer": customer, "amount": amount, "currency": "EUR",
            "owner": owner, "days_in_stage": days, "rotting": rotting, "overdue": overdue,
            "next_step": next_step, "version": id_ % 7 + 1}


MANY = st.query_params.get("stages") == "many"


if "kb_demo" not in st.session_state:
    st.session_state.kb_demo = {
        "stages": [
            {"id": 1, "name": "Qualification", "kind": "open", "probability": 20, "more": 3,
             "hidden_total": 75000},
            {"id": 2, "name": "Proposal", "kind": "open", "probability": 60, "more": 0},
            *[{"id": 10 + i, "name": f"Step {i}", "kind": "open", "probability": 70,
               "more": 0} for i in range(6 if MANY else 0)],
            {"id": 3, "name": "Won", "kind": "won", "probability": 100, "more": 0},
            *([{"id": 4, "name": "Lost", "kind": "lost", "probability": 0, "more": 0}]
              if MANY else []),
        ],
        "cards": {
            1: [_card(101, "Website relaunch", "Acme GmbH", 120000, "Reza Rahimi", 3,
                      next_step="Call the CTO on Monday"),
                _card(102, XSS, "Evil Corp <b>bold</b>", 30000, "Sam Seller", 41, rotting=True,
                      next_step="<script>alert(2)</script>"),
                _card(103, "Support contract 2027", "Globex", 45500, "Reza Rahimi", 12,
                      overdue=True)],
            2: [_card(201, "ERP integration", "Initech", 250000, "Sam Seller", 8, rotting=True,
                      overdue=True, next_step="Send revised offer")],
            3: [_card(301, "Training days", "Umbrella AG", 18000, "Maria Manager", 2)],
            4: [],
            **{10 + i: [] for i in range(6)},
        },
        "moves": 0,
        "opens": 0,
        "opened": None,
        "version": None,
        "runs": 0,
    }
demo = st.session_state.kb_demo
demo["runs"] += 1


def on_move(deal_id: int, to_stage_id: int, version: int | None) -> None:
    demo["version"] = version
    for cards in demo["cards"].values():
        for card in cards:
            if card["id"] == deal_id:
                cards.remove(card)
                card["version"] += 1
                demo["cards"][to_stage_id].insert(0, card)
                demo["moves"] += 1
                return


def on_open(deal_id: int) -> None:
    demo["opened"] = deal_id
    demo["opens"] += 1


def columns() -> list[dict]:
    out = []
    for stage in demo["stages"]:
        cards = demo["cards"][stage["id"]]
        total = sum(c["amount"] for c in cards) + stage.get("hidden_total", 0)
        column = {k: v for k, v in stage.items() if k != "hidden_total"}
        column.update(count=len(cards) + stage["more"], currency="EUR", total=total,
                      weighted=total * stage["probability"] / 100, cards=cards)
        out.append(column)
    return out


st.title("Pipeline")
kanban_board(columns(), key="board", on_move=on_move, on_open=on_open, height=480)
st.write(f"Last opened deal: {demo['opened']}")
st.write(f"Moves handled: {demo['moves']}")
st.write(f"Version of the last moved card: {demo['version']}")
st.write(f"Opens handled: {demo['opens']}")
st.write(f"Script runs: {demo['runs']}")
st.button("Rerun")
