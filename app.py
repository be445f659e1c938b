"""Entry point: page config and the pages each role may open (the guard draws the menu)."""
import streamlit as st

from crm.ui.guard import current_user
from crm.ui.navigation import pages_for

st.set_page_config(page_title="CRM", page_icon=":material/handshake:", layout="wide")

user = current_user()
st.navigation(pages_for(user.role if user else None), position="hidden").run()
