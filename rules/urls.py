"""The rules pages (mounted at /rules/)."""

from __future__ import annotations

from django.urls import URLPattern, path

from rules import views

urlpatterns: list[URLPattern] = [
    path("", views.rules_index, name="rules"),
    path("<int:rule_set_id>/", views.ruleset_detail, name="rules-set"),
    path("<int:rule_set_id>/clone/", views.ruleset_clone_view, name="rules-clone"),
    path("<int:rule_set_id>/rules/new/", views.rule_add, name="rules-rule-add"),
    path("<int:rule_set_id>/rules/<int:rule_id>/", views.rule_edit, name="rules-rule-edit"),
    path("<int:rule_set_id>/rules/<int:rule_id>/delete/", views.rule_delete_view, name="rules-rule-delete"),
    path("<int:rule_set_id>/check/", views.rule_check_view, name="rules-check"),
    # /rules/<id>/dry-run/ ("rules-dry-run") is restructuring's (restructuring/urls.py): it runs the cases.
    path("<int:rule_set_id>/publish/", views.ruleset_publish_view, name="rules-publish"),
]
