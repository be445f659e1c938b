"""Saved views on a page: a compact view picker and a popover to save and manage views.

The chosen view travels in st.query_params ("?view=3"), so a link to it can be shared and
reloaded. A page uses it in three steps:

    bar = ViewBar(entity, user, kind, prefix, apply=..., probe=...)
    bar.start()             # before the page's widgets: loads the view into their state
    bar.picker(container)   # the selectbox of views
    ... the page's widgets ...
    bar.manage(container, current_config)   # the popover: save, update, rename, delete...

apply(config or None) writes a view's config into the page's widget keys (None: the page's
standard state); probe is one of those widget keys: when it is missing, Streamlit has dropped
the widgets' state (the user was on another page) and the view is applied again."""
from __future__ import annotations

from typing import Callable

import streamlit as st

from crm import records, views
from crm.auth import PermissionDenied, User
from crm.fields import ValidationError
from crm.i18n import gettext as _
from crm.ui.session import get_db
from crm.ui.text import md_escape


STANDARD = 0  # the picker's option for no saved view


class ViewBar:
    def __init__(self, entity: records.Entity, user: User, kind: str, prefix: str,
                 apply: Callable[[dict | None], None], probe: str, compact: bool = False,
                 param: str = "view"):
        """compact: the picker shows its label (beside labelled widgets) and the popover
        only its icon (a crowded row). param: the query parameter naming the view (a page
        with two lists gives each its own)."""
        self.entity, self.user, self.kind, self.prefix = entity, user, kind, prefix
        self.param = param
        self.label = self.compact = compact
        self.apply, self.probe = apply, probe
        self.view: dict | None = None
        self.views: list[dict] = []

    def key(self, name: str) -> str:
        return f"{self.prefix}:view:{name}"

    # --- before the page's widgets -------------------------------------------------------------

    def start(self) -> dict | None:
        """Chooses the view (the link's, else the one chosen in this session, else the user's
        or the team's default), applies it to the page's widgets when it changed, and returns
        it (None: the standard view)."""
        db, state = get_db(), st.session_state
        for name in state.pop(self.key("clear"), []):  # inputs to empty after a command
            state.pop(self.key(name), None)
        param = st.query_params.get(self.param)
        current = self.key("current")
        if param is not None:
            wanted = _as_id(param)
            if wanted is None:
                self._note(_("That link names no valid view; showing the standard view."))
        elif current in state:
            wanted = state[current]
        else:
            default = views.default_view(db, self.user, self.entity, self.kind)
            wanted = default["id"] if default else None
        self.view = None
        if wanted is not None:
            try:
                self.view = views.get_view(db, self.user, wanted, self.entity, self.kind)
            except (records.NotFound, PermissionDenied):
                self._note(_("View #{id} does not exist or is private; showing the standard "
                             "view.").format(id=wanted))
                wanted = None
        state[current] = wanted
        _link(self.param, wanted)
        if state.get(self.key("loaded"), "none") != wanted or self.probe not in state:
            self.apply(self.view["config"] if self.view else None)
            state[self.key("loaded")] = wanted
        self.views = views.list_views(db, self.user, self.entity, self.kind)
        state[self.key("pick")] = STANDARD if wanted is None else wanted
        return self.view

    def _note(self, text: str) -> None:
        st.session_state[self.key("note")] = text

    # --- the picker ----------------------------------------------------------------------------

    def picker(self, container) -> None:
        names = {v["id"]: self._label(v) for v in self.views}
        if self.view is not None and self.view["id"] not in names:  # e.g. unshared meanwhile
            names[self.view["id"]] = self._label(self.view)
        options = [STANDARD, *names]  # not None: a selectbox shows None as "no choice"
        container.selectbox(
            _("View"), options, key=self.key("pick"),
            label_visibility="visible" if self.label else "collapsed",
            format_func=lambda i: _("Standard view") if i == STANDARD else names.get(i, f"#{i}"),
            on_change=self._picked, help=_("Saved views: columns, filters, search and sort "
                                           "kept under a name"))

    def _label(self, view: dict) -> str:
        name = view["name"]
        if view["owner_id"] != self.user.id:
            name = _("{name} · {owner}").format(name=name, owner=view.get("owner_name") or "?")
        return name

    def _picked(self) -> None:
        chosen = st.session_state[self.key("pick")] or None
        st.session_state[self.key("current")] = chosen
        _link(self.param, chosen)

    def notes(self) -> None:
        """Quiet remarks: a link to a missing view, fields a view named that are gone."""
        note = st.session_state.pop(self.key("note"), None)
        if note:
            st.caption(md_escape(note))
        if self.view and self.view["dropped"]:
            st.caption(_("This view named fields that no longer exist, now left out: "
                         "{fields}").format(fields=md_escape(", ".join(self.view["dropped"]))))

    # --- the popover ---------------------------------------------------------------------------

    def manage(self, container, config: dict) -> None:
        """The save/manage popover; config is what the page shows now."""
        view = self.view
        changed = view is not None and not views.same_config(self.entity, config,
                                                             view["config"], self.kind)
        label = ("" if self.compact else _("View")) + (" •" if changed else "")
        with container.popover(label, icon=":material/bookmarks:", width="stretch",
                               help=_("Save and manage views")):
            if view is not None:
                self._manage_view(view, config, changed)
                st.divider()
            st.markdown(_("**Save as a new view**"))
            name = st.text_input(_("Name"), key=self.key("new_name"), max_chars=views.NAME_LENGTH,
                                 placeholder=_("e.g. My hot leads"))
            shared = st.checkbox(_("Share with the team"), key=self.key("new_shared"))
            if st.button(_("Save view"), key=self.key("save"), icon=":material/add:",
                         type="primary"):
                new_id = self._run(lambda: views.create_view(
                    get_db(), self.user, self.entity, name, config, shared, self.kind))
                if new_id is not None:
                    self._done(new_id, _("View saved"), clear=("new_name", "new_shared"))

    def _manage_view(self, view: dict, config: dict, changed: bool) -> None:
        user, db = self.user, get_db()
        bits = [_("shared with the team") if view["shared"] else _("private")]
        if view["owner_id"] != user.id:
            bits.append(_("by {name}").format(name=view.get("owner_name") or "?"))
        mine = next((v for v in self.views if v["id"] == view["id"]), view)
        if mine.get("my_default"):
            bits.append(_("your default"))
        if mine.get("team_default"):
            bits.append(_("the team's default"))
        st.markdown(f"**{md_escape(view['name'])}** · " + " · ".join(bits))
        if changed:
            st.caption(_("The list differs from the saved view."))
        editable = views.may_edit(user, view)
        if editable:
            if st.button(_("Save changes to this view"), key=self.key("update"),
                         icon=":material/save:", disabled=not changed, width="stretch"):
                if self._run(lambda: views.update_view(db, user, view["id"], self.entity,
                                                       config=config)) is not None:
                    self._done(view["id"], _("View updated"))
        if mine.get("my_default"):
            if st.button(_("Stop opening with this view"), key=self.key("undefault"),
                         width="stretch"):
                self._command(lambda: views.set_default(db, user, self.entity, None, self.kind),
                              view["id"], _("Default cleared"))
        elif st.button(_("Open this page with this view"), key=self.key("default"),
                       icon=":material/star:", width="stretch"):
            self._command(lambda: views.set_default(db, user, self.entity, view["id"],
                                                    self.kind), view["id"], _("Default set"))
        if user.sees_all and view["shared"]:
            if mine.get("team_default"):
                if st.button(_("Stop being the team's default"), key=self.key("unteam"),
                             width="stretch"):
                    self._command(lambda: views.set_default(db, user, self.entity, None,
                                                            self.kind, team=True),
                                  view["id"], _("Default cleared"))
            elif st.button(_("Make it the team's default"), key=self.key("team"),
                           icon=":material/groups:", width="stretch"):
                self._command(lambda: views.set_default(db, user, self.entity, view["id"],
                                                        self.kind, team=True),
                              view["id"], _("Default set"))
        if not editable:
            return
        rename_key = self.key(f"rename:{view['id']}")
        new_name = st.text_input(_("Rename"), value=view["name"], key=rename_key,
                                 max_chars=views.NAME_LENGTH)
        rename, share, delete = st.columns(3)
        if rename.button(_("Rename"), key=self.key("rename"), width="stretch"):
            self._command(lambda: views.rename_view(db, user, view["id"], self.entity,
                                                    new_name),
                          view["id"], _("View renamed"), clear=(f"rename:{view['id']}",))
        if share.button(_("Make private") if view["shared"] else _("Share"),
                        key=self.key("share"), width="stretch"):
            self._command(lambda: views.update_view(db, user, view["id"], self.entity,
                                                    shared=not view["shared"]),
                          view["id"], _("View updated"))
        if delete.button(_("Delete"), key=self.key("delete"), icon=":material/delete:",
                         width="stretch"):
            self._command(lambda: views.delete_view(db, user, view["id"]), None,
                          _("View deleted"))

    def _run(self, command):
        try:
            result = command()
        except ValidationError as exc:
            st.error(md_escape(" ".join(exc.errors.values())))
            return None
        except (PermissionDenied, records.NotFound, records.ConflictError) as exc:
            st.error(md_escape(exc))
            return None
        return True if result is None else result

    def _command(self, command, view_id, done: str, clear=()) -> None:
        if self._run(command) is not None:
            self._done(view_id, done, clear)

    def _done(self, view_id, message: str, clear=()) -> None:
        state = st.session_state
        state[self.key("current")] = view_id
        if view_id is None:  # deleted: back to the standard view
            state.pop(self.key("loaded"), None)
        else:
            state[self.key("loaded")] = view_id  # the widgets already show it
        state[self.key("clear")] = list(clear)
        _link(self.param, view_id)
        st.toast(message, icon=":material/bookmarks:")
        st.rerun()


def _link(param: str, view_id) -> None:
    """Puts the view in the page's address (?view=3), or takes it out."""
    if view_id is None:
        if param in st.query_params:
            del st.query_params[param]
    elif st.query_params.get(param) != str(view_id):
        st.query_params[param] = str(view_id)


def _as_id(raw) -> int | None:
    try:
        value = int(raw)
    except (TypeError, ValueError):
        return None
    return value if value > 0 else None
