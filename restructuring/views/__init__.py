"""The credit officer's pages (server-rendered): the queue, the case, and the actions on cases and proposals.

Every view is written with core.access.staff_view, which names the permissions it needs; an action calls exactly
one service and redirects back to the case with a message (POST, CSRF; with htmx the same forms swap the page in
place)."""
