#!/usr/bin/env python3
"""A real SMTP server on loopback for the email tests (Debian's python3-aiosmtpd).

STARTTLS is required before anything else, and AUTH (PLAIN or LOGIN) with the
given user and password before MAIL: a client that sends credentials or mail in
clear is refused. Each message received is written whole (its original bytes) to
<dir>/<n>.eml, then announced on stdout as "RECEIVED <path>", so the test waits for
that line rather than polling. The first line is "READY <port>".

usage: smtp_inbox.py CERT KEY DIR USER PASSWORD
"""
import asyncio
import itertools
import os
import socket
import ssl
import sys

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword


class Inbox:
    def __init__(self, directory):
        self.directory = directory
        self.count = itertools.count()

    async def handle_DATA(self, server, session, envelope):
        n = next(self.count)
        path = os.path.join(self.directory, f"{n:06}.eml")
        with open(path + ".tmp", "wb") as f:
            f.write(envelope.original_content or envelope.content)
        os.rename(path + ".tmp", path)
        print(f"RECEIVED {path}", flush=True)
        return "250 OK"


def main():
    cert, key, directory, user, password = sys.argv[1:6]
    tls = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    tls.load_cert_chain(cert, key)

    def authenticator(server, session, envelope, mechanism, auth_data):
        ok = (
            isinstance(auth_data, LoginPassword)
            and auth_data.login == user.encode()
            and auth_data.password == password.encode()
        )
        return AuthResult(success=ok)

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    controller = Controller(
        Inbox(directory),
        hostname="127.0.0.1",
        port=port,
        tls_context=tls,
        require_starttls=True,
        auth_require_tls=True,
        auth_required=True,
        authenticator=authenticator,
    )
    controller.start()
    print(f"READY {port}", flush=True)
    try:
        # Until the test closes our stdin (or kills us).
        sys.stdin.read()
    finally:
        controller.stop()


if __name__ == "__main__":
    main()
