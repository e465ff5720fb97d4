#!/usr/bin/env python3
"""One guest TCP connection, relayed to the host's orchestrator: qemu's
`guestfwd=…-cmd:` spawns this per connection (a `tcp:` chardev target would serve only
the first connection a VM makes). stdin/stdout are the guest's side.

    relay.py PORT
"""

import os
import socket
import sys
import threading

s = socket.create_connection(("127.0.0.1", int(sys.argv[1])))


def up():
    while True:
        b = os.read(0, 65536)
        if not b:
            break
        s.sendall(b)
    try:
        s.shutdown(socket.SHUT_WR)
    except OSError:
        pass


threading.Thread(target=up, daemon=True).start()
while True:
    b = s.recv(65536)
    if not b:
        break
    os.write(1, b)
