"""The message templates shipped with the code: version 1 of every client message, per channel, in English and
German. They are installed once (restructuring/services/message_templates.py, `message_templates_ensure`, after
every migrate) where a (kind, channel, locale) has no template at all; from then on staff change them through the
review workflow, and these texts are never read again for it.

Each entry is (subject, email text, SMS text). The letter is the email's subject and text as HTML paragraphs
(`letter_body`), autoescaped when rendered like every letter.
"""

from __future__ import annotations

import re

from restructuring.models import NotificationChannel, NotificationKind

K = NotificationKind

_SIGN_EN = "\n\nCase {{ case_id }}.\n{{ lender_name }}"
_SIGN_DE = "\n\nVorgang {{ case_id }}.\n{{ lender_name }}"
_HELLO_EN = "Dear {{ client_name }},\n\n"
_HELLO_DE = "Guten Tag {{ client_name }},\n\n"
_BY = "{% if deadline or due %} by {{ deadline|default:due|datetime }}{% endif %}"
_BIS = "{% if deadline or due %} bis {{ deadline|default:due|datetime }}{% endif %}"

EN: dict[str, tuple[str, str, str]] = {
    K.MARGIN_CALL: (
        "Margin call on account {{ account }}: {{ call_amount|money:currency }} by {{ deadline|datetime }}",
        _HELLO_EN + "account {{ account }} is below its maintenance margin requirement. Please deposit "
        "{{ call_amount|money:currency }} or reduce your positions by {{ deadline|datetime }}. If the call is not "
        "met by then, the positions may be liquidated." + _SIGN_EN,
        "{{ lender_name }}: margin call on account {{ account }}. Deposit {{ call_amount|money:currency }} or reduce "
        "your positions by {{ deadline|datetime }}, or they may be liquidated. Case {{ case_id }}.",
    ),
    K.DEADLINE_REMINDER: (
        "Reminder: {% if state == 'offered' %}the offer for account {{ account }} awaits your answer{% else %}the "
        "margin call on account {{ account }} is due{% endif %}" + _BY,
        _HELLO_EN
        + "{% if state == 'offered' %}the offer of new terms for account {{ account }} awaits your answer"
        + _BY
        + "; after that it expires.{% else %}the margin call{% if call_amount %} of {{ call_amount|money:currency }}"
        "{% endif %} on account {{ account }} is due"
        + _BY
        + ". If it is not met in time, the positions may be liquidated.{% endif %}"
        + _SIGN_EN,
        "{{ lender_name }}: reminder, {% if state == 'offered' %}the offer for account {{ account }} awaits your "
        "answer{% else %}the margin call on account {{ account }} is due{% endif %}" + _BY + ". Case {{ case_id }}.",
    ),
    K.OFFER: (
        "New terms are offered for account {{ account }}",
        _HELLO_EN + "we offer to restructure the loan of account {{ account }}: {{ terms.term_months }} monthly "
        "installment{{ terms.term_months|pluralize }}{% if terms.rate_annual %} at an annual rate of "
        "{{ terms.rate_annual|percent }}{% endif %}, collateral to add {{ terms.collateral_to_add|money:currency }}. "
        "The offer stands until {{ expires_at|datetime }}. Read it in full, and accept, decline or counter it, "
        "through the API (offer {{ proposal_id }})." + _SIGN_EN,
        "{{ lender_name }}: new terms are offered for account {{ account }} until {{ expires_at|datetime }} (offer "
        "{{ proposal_id }}). Case {{ case_id }}.",
    ),
    K.COUNTER_RECEIVED: (
        "We received your counter-offer for account {{ account }}",
        _HELLO_EN + "we received your counter-offer for account {{ account }} (proposal {{ proposal_id }}): "
        "{{ terms.term_months }} monthly installment{{ terms.term_months|pluralize }}{% if terms.rate_annual %} at "
        "an annual rate of {{ terms.rate_annual|percent }}{% endif %}, collateral to add "
        "{{ terms.collateral_to_add|money:currency }}. Our credit officers will review it and answer you." + _SIGN_EN,
        "{{ lender_name }}: we received your counter-offer for account {{ account }} and will answer you. Case "
        "{{ case_id }}.",
    ),
    K.ACCEPTED: (
        "You accepted the offer for account {{ account }}",
        _HELLO_EN + "we have your acceptance of offer {{ proposal_id }} for account {{ account }}. We will now "
        "carry out the restructuring and send you its repayment schedule." + _SIGN_EN,
        "{{ lender_name }}: we have your acceptance of offer {{ proposal_id }} for account {{ account }}. Case "
        "{{ case_id }}.",
    ),
    K.EXECUTED: (
        "Your loan on account {{ account }} is restructured",
        _HELLO_EN + "the restructuring of account {{ account }} is in force: a principal of "
        "{{ principal|money:currency }} at an annual rate of {{ rate_annual|percent }}, repaid in {{ installments }} "
        "installment{{ installments|pluralize }}, the first of {{ first_amount|money:currency }} due on "
        "{{ first_due|date }}, the last on {{ maturity|date }}.{% if collateral_to_add %} Please add "
        "{{ collateral_to_add|money:currency }} of collateral by {{ collateral_due|datetime }}.{% endif %}" + _SIGN_EN,
        "{{ lender_name }}: the restructuring of account {{ account }} is in force. First installment "
        "{{ first_amount|money:currency }} due {{ first_due|date }}. Case {{ case_id }}.",
    ),
    K.INSTALLMENT_DUE: (
        "Installment {{ number }} on account {{ account }} is due on {{ due|date }}",
        _HELLO_EN + "installment {{ number }} of your repayment schedule on account {{ account }} is due on "
        "{{ due|date }}: {{ amount|money:currency }}." + _SIGN_EN,
        "{{ lender_name }}: installment {{ number }} on account {{ account }}, {{ amount|money:currency }}, is due "
        "on {{ due|date }}. Case {{ case_id }}.",
    ),
    K.MISSED_PAYMENT: (
        "Notice of default: account {{ account }}",
        _HELLO_EN + "installment{{ missed_installments|length|pluralize }} {{ missed_installments|join:', ' }} of "
        "your repayment schedule on account {{ account }} {{ missed_installments|length|pluralize:'was,were' }} "
        "not paid within the grace period: {{ amount_overdue|money:currency }} is overdue. The restructuring is in "
        "default, and the lender may now enforce its security, including the sale of the positions." + _SIGN_EN,
        "{{ lender_name }}: notice of default on account {{ account }}, {{ amount_overdue|money:currency }} "
        "overdue. The positions may be sold. Case {{ case_id }}.",
    ),
    K.PROMISE_KEPT: (
        "Thank you: your payment on account {{ account }} arrived",
        _HELLO_EN + "{{ received|money:currency }} arrived on account {{ account }}: your promise to pay "
        "{{ amount|money:currency }} by {{ due|date }} is kept. Thank you." + _SIGN_EN,
        "{{ lender_name }}: thank you, your payment of {{ received|money:currency }} on account {{ account }} "
        "arrived. Case {{ case_id }}.",
    ),
    K.PROMISE_BROKEN: (
        "Your promised payment on account {{ account }} has not arrived",
        _HELLO_EN + "you promised to pay {{ amount|money:currency }} by {{ due|date }} on account {{ account }}; "
        "we have received {{ received|money:currency }}. Please pay, or contact us to agree what happens next."
        + _SIGN_EN,
        "{{ lender_name }}: the {{ amount|money:currency }} you promised by {{ due|date }} on account "
        "{{ account }} has not arrived. Please contact us. Case {{ case_id }}.",
    ),
    K.LIQUIDATION: (
        "Liquidation of account {{ account }} has started",
        _HELLO_EN + "the margin call on account {{ account }} was not met: its positions are being sold"
        "{% if days %}, over about {{ days }} day{{ days|pluralize }}{% endif %}." + _SIGN_EN,
        "{{ lender_name }}: the positions of account {{ account }} are being sold (margin call not met). Case "
        "{{ case_id }}.",
    ),
    K.CURED: (
        "Account {{ account }} is back within its margin requirement",
        _HELLO_EN
        + "account {{ account }} is back within its margin requirement: the margin call is closed."
        + _SIGN_EN,
        "{{ lender_name }}: account {{ account }} is back within its margin requirement; the margin call is "
        "closed. Case {{ case_id }}.",
    ),
    K.LIQUIDATED: (
        "Liquidation of account {{ account }} is complete",
        _HELLO_EN + "the positions of account {{ account }} have been sold. The proceeds repaid "
        "{{ debt_repaid|money:currency }} of debt." + _SIGN_EN,
        "{{ lender_name }}: the positions of account {{ account }} have been sold; {{ debt_repaid|money:currency }} "
        "of debt repaid. Case {{ case_id }}.",
    ),
    K.WRITTEN_OFF: (
        "Liquidation of account {{ account }} is complete: {{ shortfall|money:currency }} shortfall",
        _HELLO_EN + "the positions of account {{ account }} have been sold. The proceeds repaid "
        "{{ debt_repaid|money:currency }} of debt; a shortfall of {{ shortfall|money:currency }} remained and has "
        "been written off." + _SIGN_EN,
        "{{ lender_name }}: the positions of account {{ account }} have been sold; a shortfall of "
        "{{ shortfall|money:currency }} was written off. Case {{ case_id }}.",
    ),
    K.WEBHOOK_DISABLED: (
        "Your webhook endpoint {{ endpoint_id }} has been disabled",
        _HELLO_EN + "your webhook endpoint {{ endpoint_id }} ({{ url }}) failed {{ consecutive_failures }} deliveries "
        "in a row and has been disabled: it receives nothing until you enable it again (POST "
        "/api/v1/webhooks/{{ endpoint_id }}/enable/). The last attempt got: {{ last_error }}" + _SIGN_EN,
        "{{ lender_name }}: your webhook endpoint {{ endpoint_id }} failed {{ consecutive_failures }} deliveries in "
        "a row and has been disabled. Case {{ case_id }}.",
    ),
}

DE: dict[str, tuple[str, str, str]] = {
    K.MARGIN_CALL: (
        "Nachschussforderung für Konto {{ account }}: {{ call_amount|money:currency }} bis {{ deadline|datetime }}",
        _HELLO_DE + "das Konto {{ account }} unterschreitet seine Mindestsicherheitsanforderung. Bitte zahlen Sie "
        "{{ call_amount|money:currency }} ein oder verringern Sie Ihre Positionen bis {{ deadline|datetime }}. Wird "
        "die Forderung bis dahin nicht erfüllt, können die Positionen verwertet werden." + _SIGN_DE,
        "{{ lender_name }}: Nachschussforderung für Konto {{ account }}. Zahlen Sie {{ call_amount|money:currency }} "
        "ein oder verringern Sie Ihre Positionen bis {{ deadline|datetime }}, sonst können sie verwertet werden. "
        "Vorgang {{ case_id }}.",
    ),
    K.DEADLINE_REMINDER: (
        "Erinnerung: {% if state == 'offered' %}das Angebot für Konto {{ account }} erwartet Ihre Antwort{% else %}"
        "die Nachschussforderung für Konto {{ account }} ist fällig{% endif %}" + _BIS,
        _HELLO_DE + "{% if state == 'offered' %}das Angebot neuer Bedingungen für Konto {{ account }} erwartet Ihre "
        "Antwort" + _BIS + "; danach verfällt es.{% else %}die Nachschussforderung{% if call_amount %} über "
        "{{ call_amount|money:currency }}{% endif %} für Konto {{ account }} ist fällig"
        + _BIS
        + ". Wird sie nicht rechtzeitig erfüllt, können die Positionen verwertet werden.{% endif %}"
        + _SIGN_DE,
        "{{ lender_name }}: Erinnerung, {% if state == 'offered' %}das Angebot für Konto {{ account }} erwartet "
        "Ihre Antwort{% else %}die Nachschussforderung für Konto {{ account }} ist fällig{% endif %}" + _BIS + ". "
        "Vorgang {{ case_id }}.",
    ),
    K.OFFER: (
        "Neue Bedingungen für Konto {{ account }}",
        _HELLO_DE + "wir bieten Ihnen an, das Darlehen des Kontos {{ account }} umzuschulden: "
        "{{ terms.term_months }} Monatsrate{{ terms.term_months|pluralize:'n' }}{% if terms.rate_annual %} zu "
        "einem Jahreszins von {{ terms.rate_annual|percent }}{% endif %}, zusätzliche Sicherheiten "
        "{{ terms.collateral_to_add|money:currency }}. Das Angebot gilt bis {{ expires_at|datetime }}. Lesen Sie es "
        "vollständig und nehmen Sie es über die API an, lehnen Sie es ab oder machen Sie ein Gegenangebot "
        "(Angebot {{ proposal_id }})." + _SIGN_DE,
        "{{ lender_name }}: neue Bedingungen für Konto {{ account }}, gültig bis {{ expires_at|datetime }} "
        "(Angebot {{ proposal_id }}). Vorgang {{ case_id }}.",
    ),
    K.COUNTER_RECEIVED: (
        "Ihr Gegenangebot für Konto {{ account }} ist eingegangen",
        _HELLO_DE + "Ihr Gegenangebot für Konto {{ account }} (Vorschlag {{ proposal_id }}) ist eingegangen: "
        "{{ terms.term_months }} Monatsrate{{ terms.term_months|pluralize:'n' }}{% if terms.rate_annual %} zu "
        "einem Jahreszins von {{ terms.rate_annual|percent }}{% endif %}, zusätzliche Sicherheiten "
        "{{ terms.collateral_to_add|money:currency }}. Unsere Kreditsachbearbeiter prüfen es und antworten Ihnen."
        + _SIGN_DE,
        "{{ lender_name }}: Ihr Gegenangebot für Konto {{ account }} ist eingegangen; wir antworten Ihnen. "
        "Vorgang {{ case_id }}.",
    ),
    K.ACCEPTED: (
        "Sie haben das Angebot für Konto {{ account }} angenommen",
        _HELLO_DE + "Ihre Annahme des Angebots {{ proposal_id }} für Konto {{ account }} liegt uns vor. Wir führen "
        "die Umschuldung nun durch und senden Ihnen ihren Tilgungsplan." + _SIGN_DE,
        "{{ lender_name }}: Ihre Annahme des Angebots {{ proposal_id }} für Konto {{ account }} liegt uns vor. "
        "Vorgang {{ case_id }}.",
    ),
    K.EXECUTED: (
        "Ihr Darlehen auf Konto {{ account }} ist umgeschuldet",
        _HELLO_DE + "die Umschuldung des Kontos {{ account }} ist in Kraft: ein Darlehensbetrag von "
        "{{ principal|money:currency }} zu einem Jahreszins von {{ rate_annual|percent }}, getilgt in "
        "{{ installments }} Rate{{ installments|pluralize:'n' }}, die erste über {{ first_amount|money:currency }} "
        "fällig am {{ first_due|date }}, die letzte am {{ maturity|date }}.{% if collateral_to_add %} Bitte stellen "
        "Sie bis {{ collateral_due|datetime }} zusätzliche Sicherheiten über {{ collateral_to_add|money:currency }}."
        "{% endif %}" + _SIGN_DE,
        "{{ lender_name }}: die Umschuldung des Kontos {{ account }} ist in Kraft. Erste Rate "
        "{{ first_amount|money:currency }} fällig am {{ first_due|date }}. Vorgang {{ case_id }}.",
    ),
    K.INSTALLMENT_DUE: (
        "Rate {{ number }} für Konto {{ account }} ist am {{ due|date }} fällig",
        _HELLO_DE + "die Rate {{ number }} Ihres Tilgungsplans für Konto {{ account }} ist am {{ due|date }} fällig: "
        "{{ amount|money:currency }}." + _SIGN_DE,
        "{{ lender_name }}: Rate {{ number }} für Konto {{ account }}, {{ amount|money:currency }}, ist am "
        "{{ due|date }} fällig. Vorgang {{ case_id }}.",
    ),
    K.MISSED_PAYMENT: (
        "Mitteilung über den Zahlungsverzug: Konto {{ account }}",
        _HELLO_DE + "die Rate{{ missed_installments|length|pluralize:'n' }} {{ missed_installments|join:', ' }} "
        "Ihres Tilgungsplans für Konto {{ account }} {{ missed_installments|length|pluralize:'ist,sind' }} nicht "
        "innerhalb der Nachfrist bezahlt worden: {{ amount_overdue|money:currency }} sind überfällig. Die "
        "Umschuldung ist notleidend; der Darlehensgeber kann nun seine Sicherheiten verwerten, einschließlich des "
        "Verkaufs der Positionen." + _SIGN_DE,
        "{{ lender_name }}: Zahlungsverzug auf Konto {{ account }}, {{ amount_overdue|money:currency }} überfällig. "
        "Die Positionen können verkauft werden. Vorgang {{ case_id }}.",
    ),
    K.PROMISE_KEPT: (
        "Vielen Dank: Ihre Zahlung auf Konto {{ account }} ist eingegangen",
        _HELLO_DE + "auf Konto {{ account }} sind {{ received|money:currency }} eingegangen: Ihre Zusage, "
        "{{ amount|money:currency }} bis zum {{ due|date }} zu zahlen, ist eingehalten. Vielen Dank." + _SIGN_DE,
        "{{ lender_name }}: vielen Dank, Ihre Zahlung über {{ received|money:currency }} auf Konto {{ account }} "
        "ist eingegangen. Vorgang {{ case_id }}.",
    ),
    K.PROMISE_BROKEN: (
        "Ihre zugesagte Zahlung auf Konto {{ account }} ist nicht eingegangen",
        _HELLO_DE + "Sie hatten zugesagt, bis zum {{ due|date }} {{ amount|money:currency }} auf Konto "
        "{{ account }} zu zahlen; eingegangen sind {{ received|money:currency }}. Bitte zahlen Sie, oder nehmen Sie "
        "Kontakt mit uns auf, um das weitere Vorgehen zu vereinbaren." + _SIGN_DE,
        "{{ lender_name }}: die bis zum {{ due|date }} zugesagten {{ amount|money:currency }} auf Konto "
        "{{ account }} sind nicht eingegangen. Bitte melden Sie sich. Vorgang {{ case_id }}.",
    ),
    K.LIQUIDATION: (
        "Die Verwertung des Kontos {{ account }} hat begonnen",
        _HELLO_DE + "die Nachschussforderung für Konto {{ account }} wurde nicht erfüllt: seine Positionen werden "
        "verkauft{% if days %}, voraussichtlich über {{ days }} Tag{{ days|pluralize:'e' }}{% endif %}." + _SIGN_DE,
        "{{ lender_name }}: die Positionen des Kontos {{ account }} werden verkauft (Nachschussforderung nicht "
        "erfüllt). Vorgang {{ case_id }}.",
    ),
    K.CURED: (
        "Konto {{ account }} erfüllt wieder seine Sicherheitsanforderung",
        _HELLO_DE + "das Konto {{ account }} erfüllt wieder seine Sicherheitsanforderung: die Nachschussforderung "
        "ist erledigt." + _SIGN_DE,
        "{{ lender_name }}: Konto {{ account }} erfüllt wieder seine Sicherheitsanforderung; die "
        "Nachschussforderung ist erledigt. Vorgang {{ case_id }}.",
    ),
    K.LIQUIDATED: (
        "Die Verwertung des Kontos {{ account }} ist abgeschlossen",
        _HELLO_DE + "die Positionen des Kontos {{ account }} sind verkauft. Der Erlös hat "
        "{{ debt_repaid|money:currency }} der Schuld getilgt." + _SIGN_DE,
        "{{ lender_name }}: die Positionen des Kontos {{ account }} sind verkauft; {{ debt_repaid|money:currency }} "
        "der Schuld getilgt. Vorgang {{ case_id }}.",
    ),
    K.WRITTEN_OFF: (
        "Die Verwertung des Kontos {{ account }} ist abgeschlossen: Fehlbetrag {{ shortfall|money:currency }}",
        _HELLO_DE + "die Positionen des Kontos {{ account }} sind verkauft. Der Erlös hat "
        "{{ debt_repaid|money:currency }} der Schuld getilgt; ein Fehlbetrag von {{ shortfall|money:currency }} ist "
        "verblieben und wurde abgeschrieben." + _SIGN_DE,
        "{{ lender_name }}: die Positionen des Kontos {{ account }} sind verkauft; ein Fehlbetrag von "
        "{{ shortfall|money:currency }} wurde abgeschrieben. Vorgang {{ case_id }}.",
    ),
    K.WEBHOOK_DISABLED: (
        "Ihr Webhook-Endpunkt {{ endpoint_id }} wurde deaktiviert",
        _HELLO_DE + "Ihr Webhook-Endpunkt {{ endpoint_id }} ({{ url }}) hat {{ consecutive_failures }} Zustellungen "
        "in Folge nicht angenommen und wurde deaktiviert: Er erhält nichts mehr, bis Sie ihn wieder aktivieren (POST "
        "/api/v1/webhooks/{{ endpoint_id }}/enable/). Der letzte Versuch ergab: {{ last_error }}" + _SIGN_DE,
        "{{ lender_name }}: Ihr Webhook-Endpunkt {{ endpoint_id }} hat {{ consecutive_failures }} Zustellungen in "
        "Folge nicht angenommen und wurde deaktiviert. Vorgang {{ case_id }}.",
    ),
}

DEFAULTS: dict[str, dict[str, tuple[str, str, str]]] = {"en": EN, "de": DE}


def letter_body(text: str) -> str:
    """A text's paragraphs (split on blank lines) as HTML paragraphs, its single line breaks as <br>: the letter's
    body from the email's text. Template tags pass through as they are."""
    paragraphs = [p.strip() for p in re.split(r"\n\s*\n", text) if p.strip()]
    return "\n".join("<p>" + p.replace("\n", "<br>\n") + "</p>" for p in paragraphs)


def default_text(kind: str, channel: str, locale: str) -> tuple[str, str]:
    """(subject, body) of the shipped version of a (kind, channel, locale)."""
    subject, text, sms = DEFAULTS[locale][kind]
    if channel == NotificationChannel.SMS:
        return "", sms
    if channel == NotificationChannel.LETTER:
        return subject, letter_body(text)
    return subject, text
