"""Entry point: page config and the pages each role may open (the guard draws the menu)."""
import streamlit as st

from crm.ui.guard import current_user
from crm.ui.locale import language_of
from crm.ui.navigation import pages_for
from crm.ui.session import get_db

st.set_page_config(page_title="CRM", page_icon=":material/handshake:", layout="wide")

user = current_user()
language_of(get_db(), user)  # page titles in the browser tab
st.navigation(pages_for(user.role if user else None), position="hidden").run()
