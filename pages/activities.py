import streamlit as st

from crm import activities
from crm.ui.followup import log_toggle, task_list
from crm.ui.guard import require_user
from crm.ui.session import get_db
from crm.ui.tables import list_page

user = require_user("rep")

mine, tasks, logged = st.tabs(["My tasks", "All tasks", "Activities"])
with mine:
    st.title("My tasks")
    groups = activities.my_tasks(get_db(), user)
    log = log_toggle("mine")
    for name, label in (("overdue", "Overdue"), ("today", "Today"), ("upcoming", "Upcoming")):
        st.subheader(f"{label} ({len(groups[name])})")
        if groups[name]:
            task_list(user, groups[name], key=f"mine:{name}", show_related=True, log=log)
        else:
            st.caption("Nothing here.")
    st.caption("Add tasks and log activities from a lead, customer or deal page.")
with tasks:
    list_page(activities.TASKS, user, record_page="pages/task.py", can_create=False)
with logged:
    list_page(activities.ACTIVITIES, user, record_page="pages/activity.py", can_create=False)
