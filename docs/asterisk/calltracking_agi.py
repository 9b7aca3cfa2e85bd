#!/usr/bin/env python3
"""Asterisk / FreePBX AGI script for wagtail-calltracking's generic provider.

Copy it to /var/lib/asterisk/agi-bin/calltracking_agi.py (chmod 755, Python 3 standard
library only) and set the three settings below (or the environment variables of the same
names). In the dialplan of the tracking numbers' inbound route:

    [calltracking-inbound]
    exten => _X.,1,NoOp(Tracked call to ${EXTEN})
     same => n,AGI(calltracking_agi.py,incoming)
     same => n,Dial(PJSIP/${CT_FORWARD_TO}@my-trunk,${CT_TIMEOUT})
     same => n,Hangup()
    exten => h,1,AGI(calltracking_agi.py,completed)

``incoming`` asks the site where to forward the call and sets CT_FORWARD_TO, CT_TIMEOUT,
CT_RECORD, CT_WHISPER and CT_SOURCE; if the site does not answer within 3 seconds it sets
the DEFAULT_DESTINATION instead (the caller is never dropped). ``completed`` (in the ``h``
extension, after the Dial) reports DIALSTATUS, ANSWEREDTIME, DIALEDTIME and the answering
peer to the site.
"""

import hashlib
import hmac
import json
import os
import sys
import time
import urllib.request

# --- settings (or environment variables) ---------------------------------------------------
# The generic provider's base URL, as mounted on the site (ends with /webhooks/generic/).
CALLTRACKING_URL = os.environ.get("CALLTRACKING_URL", "https://www.example.com/calltracking/webhooks/generic/")
# The site's WAGTAIL_CALLTRACKING["GENERIC_SECRET"] (CALLTRACKING_GENERIC_SECRET).
CALLTRACKING_SECRET = os.environ.get("CALLTRACKING_SECRET", "change-me")
# Where calls ring when the site cannot be reached.
DEFAULT_DESTINATION = os.environ.get("CALLTRACKING_DEFAULT_DESTINATION", "+15555550100")
TIMEOUT_SECONDS = float(os.environ.get("CALLTRACKING_TIMEOUT", "3"))


def read_agi_environment(stream):
    environment = {}
    for line in stream:
        line = line.strip()
        if not line:
            break
        key, _, value = line.partition(":")
        environment[key.strip()] = value.strip()
    return environment


def agi_command(command, stream_in, stream_out):
    stream_out.write(command + "\n")
    stream_out.flush()
    return stream_in.readline().strip()


def get_variable(name, stream_in, stream_out):
    reply = agi_command(f"GET VARIABLE {name}", stream_in, stream_out)
    # "200 result=1 (value)" or "200 result=0" when unset
    if "result=1" in reply and "(" in reply:
        return reply[reply.index("(") + 1 : reply.rindex(")")]
    return ""


def set_variable(name, value, stream_in, stream_out):
    value = str(value).replace('"', "")
    agi_command(f'SET VARIABLE {name} "{value}"', stream_in, stream_out)


def post(endpoint, document):
    body = json.dumps(document).encode()
    timestamp = str(int(time.time()))
    signature = hmac.new(CALLTRACKING_SECRET.encode(), timestamp.encode() + b"." + body, hashlib.sha256).hexdigest()
    request = urllib.request.Request(  # noqa: S310 — the URL is the administrator's setting
        CALLTRACKING_URL.rstrip("/") + f"/{endpoint}/",
        data=body,
        headers={
            "Content-Type": "application/json",
            "X-CallTracking-Timestamp": timestamp,
            "X-CallTracking-Signature": f"v1={signature}",
        },
        method="POST",
    )
    with urllib.request.urlopen(request, timeout=TIMEOUT_SECONDS) as response:  # noqa: S310
        return json.loads(response.read().decode() or "{}")


def incoming(environment, stream_in, stream_out):
    document = {
        "call_id": environment.get("agi_uniqueid", ""),
        "from": environment.get("agi_callerid", ""),
        "to": environment.get("agi_dnid") or environment.get("agi_extension", ""),
        "caller_name": environment.get("agi_calleridname", ""),
    }
    try:
        answer = post("voice", document)
        destination = answer.get("forward_to") or DEFAULT_DESTINATION
    except Exception as error:  # noqa: BLE001 — fail open: the caller must ring somewhere
        sys.stderr.write(f"calltracking: {error}\n")
        answer, destination = {}, DEFAULT_DESTINATION
    set_variable("CT_FORWARD_TO", destination, stream_in, stream_out)
    set_variable("CT_TIMEOUT", answer.get("timeout", 25), stream_in, stream_out)
    set_variable("CT_RECORD", "1" if answer.get("record") else "0", stream_in, stream_out)
    set_variable("CT_WHISPER", answer.get("whisper", ""), stream_in, stream_out)
    set_variable("CT_SOURCE", answer.get("source", ""), stream_in, stream_out)


def completed(environment, stream_in, stream_out):
    status = get_variable("DIALSTATUS", stream_in, stream_out)
    answered = int(get_variable("ANSWEREDTIME", stream_in, stream_out) or 0)
    dialed = int(get_variable("DIALEDTIME", stream_in, stream_out) or 0)
    peer = get_variable("DIALEDPEERNUMBER", stream_in, stream_out)
    document = {
        "event": "completed",
        "call_id": environment.get("agi_uniqueid", ""),
        "result": status or "NOANSWER",
        "talk_seconds": answered,
        "ring_seconds": max(0, dialed - answered),
        "agent": peer.split("@")[0] if peer else "",
    }
    try:
        post("status", document)
    except Exception as error:  # noqa: BLE001 — reporting must never break the channel
        sys.stderr.write(f"calltracking: {error}\n")


def main(argv, stream_in=sys.stdin, stream_out=sys.stdout):
    environment = read_agi_environment(stream_in)
    action = argv[1] if len(argv) > 1 else "incoming"
    if action == "completed":
        completed(environment, stream_in, stream_out)
    else:
        incoming(environment, stream_in, stream_out)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
