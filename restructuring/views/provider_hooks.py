"""What providers tell us about the messages we gave them: Twilio's delivery reports of text messages.

Twilio posts a message's status to WORKOUT_TWILIO_STATUS_CALLBACK_URL (core/sms.py asks it to) as it changes:
queued, sent, delivered, undelivered, failed. The request carries no session and no token: it is Twilio's because it
is signed with the account's auth token (`X-Twilio-Signature` over the URL Twilio called, which is the one we
configured, and the form's fields: core.sms.twilio_signature). Anything unsigned, or signed otherwise, is refused
(403) and changes nothing. `undelivered` and `failed` bounce the message (restructuring.services.messages
.message_bounce: its state, its audit event); other statuses change nothing. A report of a message we do not know is
acknowledged too (204): Twilio would otherwise retry it.
"""

from __future__ import annotations

import hmac
import logging

from django.conf import settings
from django.http import HttpRequest, HttpResponse
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_POST

from core.errors import Conflict, NotFound
from core.sms import twilio_signature
from restructuring.services.messages import message_bounce

logger = logging.getLogger(__name__)

UNDELIVERED = frozenset({"undelivered", "failed"})


@csrf_exempt  # a provider's server, not a browser: the signature is the credential
@require_POST
def twilio_status(request: HttpRequest) -> HttpResponse:
    token = settings.WORKOUT_TWILIO_AUTH_TOKEN
    url = settings.WORKOUT_TWILIO_STATUS_CALLBACK_URL
    if not (token and url):
        return HttpResponse("delivery reports are not configured", status=404, content_type="text/plain")
    params = {key: request.POST.get(key, "") for key in request.POST}
    expected = twilio_signature(auth_token=token, url=url, params=params)
    if not hmac.compare_digest(expected, request.headers.get("X-Twilio-Signature", "")):
        logger.warning("a Twilio delivery report with a wrong signature was refused")
        return HttpResponse("signature refused", status=403, content_type="text/plain")
    status, sid = params.get("MessageStatus", ""), params.get("MessageSid", "")
    if status in UNDELIVERED and sid:
        code = params.get("ErrorCode", "")
        reason = f"{status}" + (f" (error {code})" if code else "")
        try:
            message_bounce(provider_id=sid, reason=reason, source="twilio")
        except NotFound:
            logger.info("Twilio reported %s for message %s, which is not ours", status, sid)
        except Conflict as error:
            logger.warning("Twilio reported %s for message %s: %s", status, sid, error)
    return HttpResponse(status=204)
