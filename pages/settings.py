import streamlit as st

from crm import backup, settings
from crm.i18n import gettext as _
from crm.ui import studio
from crm.ui.forms import clear_form, submit_form
from crm.ui.guard import require_user
from crm.ui.session import get_db

user = require_user("admin")
db = get_db()

st.title(_("General settings"))
current = settings.get_all(db)
st.caption(_("How the CRM counts things for everyone. Changes apply at once on every "
             "dashboard."))
saved = submit_form("settings", settings.FIELDS, current, {},
                    lambda values: settings.save(db, user, values), submit_label=_("Save settings"))
if saved is not None:
    clear_form("settings", settings.FIELDS)
    st.toast(_("Settings saved"), icon=":material/check:")
    st.rerun()
st.info(_("Installed base now counts: {rule}.").format(
    rule=settings.installed_base_rule_text(current)), icon=":material/info:")

st.divider()
st.subheader(_("Backup"))
st.caption(_("Every table as Parquet files with a manifest (schema version, row counts, "
             "checksums), in one zip. Restore it into a new database with "
             "`python -m crm --db NEW.duckdb restore BACKUP.zip`."))
st.download_button(_("Download a backup (zip)"), data=lambda: backup.backup_zip(db),
                   file_name=backup.zip_name(), mime="application/zip", on_click="ignore",
                   icon=":material/backup:", key="settings:backup")

st.divider()
st.subheader(_("Settings file"))
studio.settings_file(user)
