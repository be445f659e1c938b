"""Entry point: page config and the navigation each role may see."""
import streamlit as st

from crm.ui.guard import current_user
from crm.ui.navigation import pages_for

st.set_page_config(page_title="CRM", page_icon=":material/handshake:", layout="wide")

user = current_user()
if user is None:
    # Every page is reachable so a shared link survives sign-in; each page's guard shows the login.
    st.navigation(pages_for(None), position="hidden").run()
else:
    st.navigation(pages_for(user.role)).run()
