import streamlit as st

from crm.i18n import gettext as _
from crm.ui import studio
from crm.ui.guard import require_user

user = require_user("admin")

st.title(_("Custom fields & layouts"))
table = studio.entity_picker()
fields_tab, layout_tab, deleted_tab = st.tabs([_("Fields"), _("Form layout"),
                                               _("Deleted fields")])
with fields_tab:
    rows = studio.fields_table(user, table)
    add, change = st.columns(2, gap="large")
    with add:
        studio.add_form(user, table)
    with change:
        studio.edit_form(user, rows)
with layout_tab:
    studio.layout_editor(user, table)
with deleted_tab:
    studio.deleted_fields(user, table)
