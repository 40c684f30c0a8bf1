"""``make mail``'s handler: aiosmtpd serves SMTP on loopback and hands each message to
``Printer``, which prints who it is to and its text part, decoded, so a link in it opens as it
is (the raw message splits long lines: quoted-printable)."""

from email import message_from_bytes, policy

RULE = "-" * 72


class Printer:
    """An aiosmtpd handler printing each message it accepts."""

    async def handle_DATA(self, server, session, envelope) -> str:
        """Print the envelope's recipients, the subject and the text part; accept the message."""
        message = message_from_bytes(envelope.content, policy=policy.default)
        text = message.get_body(("plain",))
        lines = [
            f"From: {message['From']}",
            f"To: {', '.join(envelope.rcpt_tos)}",
            f"Subject: {message['Subject']}",
            "",
            "\n".join(text.get_content().strip().splitlines()) if text else "(no text part)",
            RULE,
        ]
        print("\n".join(lines), flush=True)
        return "250 OK"
