"""The credit officer's pages: the queue, the case, the terms form, and the actions (POST); a case's documents and
agreements (upload, download); and a draft rule set's dry run (under /rules/, with the rules pages)."""

from __future__ import annotations

from django.urls import URLPattern, path

from restructuring.views import (
    actions,
    bulk,
    cascade,
    case,
    conversation,
    desk,
    documents,
    messages,
    queue,
    rules_trial,
    webhooks,
)

urlpatterns: list[URLPattern] = [
    path("queue/", queue.queue, name="queue"),
    path("queue/bulk/", bulk.queue_bulk, name="queue-bulk"),
    path("cascade/", cascade.cascade_page, name="cascade"),
    path("cases/<int:case_id>/", case.case_detail, name="case"),
    path("cases/<int:case_id>/webhooks/", webhooks.case_webhooks, name="case-webhooks"),
    path(
        "notifications/<int:notification_id>/redeliver/",
        webhooks.notification_redeliver_view,
        name="notification-redeliver",
    ),
    path("cases/<int:case_id>/notes/", conversation.note_add_view, name="note-add"),
    path("cases/<int:case_id>/contacts/", conversation.contact_log_view, name="contact-log"),
    path("cases/<int:case_id>/promises/", conversation.promise_make_view, name="promise-make"),
    path("cases/<int:case_id>/documents/", documents.document_upload_view, name="document-upload"),
    path(
        "cases/<int:case_id>/documents/<int:document_id>/", documents.document_download_view, name="document-download"
    ),
    path(
        "cases/<int:case_id>/agreements/<int:agreement_id>/",
        documents.agreement_download_view,
        name="agreement-download",
    ),
    path("cases/<int:case_id>/reassign/", desk.case_reassign_view, name="case-reassign"),
    path("cases/<int:case_id>/proposals/new/", actions.proposal_new, name="proposal-new"),
    path("cases/<int:case_id>/liquidate/", actions.case_liquidate_view, name="case-liquidate"),
    path("proposals/<int:proposal_id>/edit/", actions.proposal_edit_view, name="proposal-edit"),
    path("proposals/<int:proposal_id>/submit/", actions.proposal_submit_view, name="proposal-submit"),
    path("proposals/<int:proposal_id>/approve/", actions.proposal_approve_view, name="proposal-approve"),
    path("proposals/<int:proposal_id>/reject/", actions.proposal_reject_view, name="proposal-reject"),
    path("proposals/<int:proposal_id>/offer/", actions.proposal_offer_view, name="proposal-offer"),
    path("proposals/<int:proposal_id>/execute/", actions.proposal_execute_view, name="proposal-execute"),
    path("proposals/<int:proposal_id>/liquidate/", actions.proposal_liquidate_view, name="proposal-liquidate"),
    path("installments/<int:installment_id>/repayment/", actions.repayment_record_view, name="repayment-record"),
    # Talking to the client: the message templates (four eyes), a letter as stored.
    path("messages/templates/", messages.templates_index, name="message-templates"),
    path(
        "messages/templates/<str:kind>/<str:channel>/<str:locale>/",
        messages.template_detail,
        name="message-template",
    ),
    path(
        "messages/templates/<str:kind>/<str:channel>/<str:locale>/save/",
        messages.template_save,
        name="message-template-save",
    ),
    path(
        "messages/templates/<str:kind>/<str:channel>/<str:locale>/preview/",
        messages.template_preview,
        name="message-template-preview",
    ),
    path("messages/templates/<int:template_id>/submit/", messages.template_submit, name="message-template-submit"),
    path("messages/templates/<int:template_id>/publish/", messages.template_publish, name="message-template-publish"),
    path("messages/templates/<int:template_id>/reject/", messages.template_reject, name="message-template-reject"),
    path("messages/<int:notification_id>/letter.pdf", messages.letter_download, name="message-letter"),
    # On the rules pages (/rules/), but it runs the cases: rules sits below restructuring (rules/urls.py).
    path("rules/<int:rule_set_id>/dry-run/", rules_trial.ruleset_dry_run_view, name="rules-dry-run"),
]
