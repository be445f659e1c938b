import streamlit as st

from crm.i18n import gettext as _
from crm.ui import market as ui
from crm.ui.guard import require_user
from crm.ui.session import get_db

user = require_user("viewer")
db = get_db()

st.title(_("Market audit"))
chosen = ui.filters(db, user)
prices, shares, win_loss, rivals, features, customers, pricing = st.tabs([
    _("Prices"), _("Market share"), _("Win and loss"), _("Strengths and weaknesses"),
    _("Features"), _("Customer audit"), _("Pricing aids")])
with prices:
    ui.prices_tab(db, user, chosen)
with shares:
    ui.share_tab(db, user, chosen)
with win_loss:
    ui.win_loss_tab(db, user, chosen)
with rivals:
    ui.profiles_tab(db, user)
with features:
    ui.features_tab(db, user, chosen)
with customers:
    ui.customers_tab(db, user, chosen)
with pricing:
    ui.pricing_tab(db, user)
