"""The administrator's staff page and its actions (restructuring/views/staff.py), under /staff/; and the desk's
team page, where a senior sends an officer on leave (restructuring/views/desk.py)."""

from __future__ import annotations

from django.urls import URLPattern, path

from restructuring.views import desk, staff

urlpatterns: list[URLPattern] = [
    path("", staff.staff_index, name="staff"),
    path("create/", staff.staff_create_view, name="staff-create"),
    path("<int:user_id>/link/", staff.enrolment_issue_view, name="staff-link"),
    path("<int:user_id>/roles/grant/", staff.role_grant_view, name="staff-role-grant"),
    path("<int:user_id>/roles/revoke/", staff.role_revoke_view, name="staff-role-revoke"),
    path("<int:user_id>/limits/set/", staff.limit_set_view, name="staff-limit-set"),
    path("<int:user_id>/limits/clear/", staff.limit_clear_view, name="staff-limit-clear"),
    path("<int:user_id>/deactivate/", staff.deactivate_view, name="staff-deactivate"),
    path("<int:user_id>/reactivate/", staff.reactivate_view, name="staff-reactivate"),
    path("team/", desk.team_page, name="staff-team"),
    path("<int:user_id>/leave/start/", desk.leave_start_view, name="staff-leave-start"),
    path("<int:user_id>/leave/end/", desk.leave_end_view, name="staff-leave-end"),
]
