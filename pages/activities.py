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
    counts = activities.my_task_counts(get_db(), user)
    log = log_toggle("mine")
    for name, label in (("overdue", "Overdue"), ("today", "Today"), ("upcoming", "Upcoming")):
        st.subheader(f"{label} ({counts[name]:,})")
        if groups[name]:
            task_list(user, groups[name], key=f"mine:{name}", show_related=True, log=log)
            if counts[name] > len(groups[name]):
                st.caption(f"The first {len(groups[name])} by due date; the All tasks tab "
                           "lists every one.")
        else:
            st.caption("Nothing here.")
    st.caption("Add tasks and log activities from a lead, customer, contact or deal page, or "
               "with “New task” under All tasks.")
with tasks:
    list_page(activities.TASKS, user, record_page="pages/task.py")
with logged:
    list_page(activities.ACTIVITIES, user, record_page="pages/activity.py")
