from datetime import date

from crm import service
from crm.i18n import gettext as _
from crm.ui.followup import activity_tab, tasks_tab
from crm.ui.guard import require_user
from crm.ui.record import record_page
from crm.ui.service import new_values, service_choices

user = require_user("rep")
record_page(service.COMPLAINTS, user, list_page="pages/complaints.py",
            choices=lambda row: service_choices(user, row),
            new_values=new_values(user, {"opened_on": date.today()}),
            tabs={_("Activities"): lambda c: activity_tab(user, "complaint_id", c["id"]),
                  _("Tasks"): lambda c: tasks_tab(user, "complaint_id", c["id"])})
