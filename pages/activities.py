import streamlit as st

from crm import activities, i18n
from crm.i18n import N_, gettext as _, ngettext
from crm.ui.followup import log_toggle, task_list
from crm.ui.guard import require_user
from crm.ui.session import get_db
from crm.ui.tables import list_page

user = require_user("rep")

mine, tasks, logged = st.tabs([_("My tasks"), _("All tasks"), _("Activities")])
with mine:
    st.title(_("My tasks"))
    groups = activities.my_tasks(get_db(), user)
    counts = activities.my_task_counts(get_db(), user)
    log = log_toggle("mine")
    for name, label in (("overdue", N_("Overdue")), ("today", N_("Today")),
                        ("upcoming", N_("Upcoming"))):
        st.subheader(f"{_(label)} ({i18n.number(counts[name])})")
        if groups[name]:
            task_list(user, groups[name], key=f"mine:{name}", show_related=True, log=log)
            if counts[name] > len(groups[name]):
                st.caption(ngettext(
                    "The first {count} by due date; the {tab} tab lists every one.",
                    "The first {count} by due date; the {tab} tab lists every one.",
                    len(groups[name])).format(count=i18n.number(len(groups[name])),
                                              tab=_("All tasks")))
        else:
            st.caption(_("Nothing here."))
    st.caption(_("Add tasks and log activities from a lead, customer, contact or deal page, or "
                 "with “{button}” under {tab}.").format(
        button=i18n.entity_text(activities.TASKS, "New {label}"), tab=_("All tasks")))
with tasks:
    list_page(activities.TASKS, user, record_page="pages/task.py", view_param="tasks_view")
with logged:
    list_page(activities.ACTIVITIES, user, record_page="pages/activity.py",
              view_param="activities_view")
