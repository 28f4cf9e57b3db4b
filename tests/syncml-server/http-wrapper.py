# SyncML server for the imsync integration tests: runs Debian's
# /usr/bin/syncevo-http-server (SyncEvolution 2.0, Python 3 + Twisted) with
# three changes, without editing the installed script:
#
#  1. listen only on SYNCML_LISTEN (default 127.0.0.1), not on all interfaces;
#  2. answer GET with bytes (upstream returns str, which Twisted under
#     Python 3 turns into an HTTP 500); the harness polls GET for readiness;
#  3. give every client device ID a server-side peer configuration on its
#     first contact (SyncEvolution picks the peer config only by the device
#     ID in SyncHdr/Source/LocURI and answers unknown IDs with HTTP 500).
#
# Started by tests/src/syncml_server.rs as
#   /usr/bin/python3 http-wrapper.py --debug http://127.0.0.1:PORT/syncevolution
# with HOME/XDG_* and DBUS_SESSION_BUS_ADDRESS of the server's private bus and:
#   SYNCML_SERVER_DIR   the server's directory (credentials in run/credentials)
#   SYNCML_DATABASES    space-separated server databases
#   SYNCML_ALIASES      space-separated db=alias pairs (second URI of a database)
#   SYNCML_LOGLEVEL, SYNCML_MAXMSGSIZE, SYNCML_MAXOBJSIZE   peer settings
#   SYNCML_SYNC_FORMATS space-separated db=MIME pairs: the datastore's syncFormat
#                       (the format the server marks preferred in its DevInf);
#                       SYNCML_FORCE_SYNC_FORMAT=1 also sets forceSyncFormat
import hashlib
import logging
import os
import re
import runpy
import subprocess
import sys
import threading

LISTEN = os.environ.get("SYNCML_LISTEN", "127.0.0.1")
SERVER_DIR = os.environ["SYNCML_SERVER_DIR"]
SYNCEVOLUTION = os.environ.get("SYNCEVOLUTION", "/usr/bin/syncevolution")
DATABASES = os.environ.get("SYNCML_DATABASES", "contacts").split()
ALIASES = dict(p.split("=", 1) for p in os.environ.get("SYNCML_ALIASES", "").split() if "=" in p)
SYNC_FORMATS = dict(p.split("=", 1) for p in os.environ.get("SYNCML_SYNC_FORMATS", "").split() if "=" in p)

# 1. listen address
from twisted.internet import posixbase  # noqa: E402

_orig_listen_tcp = posixbase.PosixReactorBase.listenTCP


def _listen_tcp(self, port, factory, backlog=50, interface=""):
    return _orig_listen_tcp(self, port, factory, backlog, interface or LISTEN)


posixbase.PosixReactorBase.listenTCP = _listen_tcp

server = runpy.run_path(os.environ.get("SYNCEVO_HTTP_SERVER", "/usr/bin/syncevo-http-server"),
                        run_name="syncevo_http_server")
log = logging.getLogger("imsync-test-server")


# 2. GET answers bytes
def _render_get(self, request):
    request.setHeader(b"content-type", b"text/html")
    return b"<html>SyncEvolution SyncML server (imsync tests)</html>"


server["SyncMLPost"].render_GET = _render_get


# 3. auto-provisioning of client device IDs
def wbxml_source_locuri(data):
    """SyncML/SyncHdr/Source/LocURI of a WBXML SyncML message, or None.

    Tokens of code page 0 of the SyncML DTD: SyncML=0x2D, SyncHdr=0x2C,
    Source=0x27, LocURI=0x17. Content flag 0x40, attribute flag 0x80."""
    pos = 0

    def mb_uint():
        nonlocal pos
        value = 0
        while True:
            byte = data[pos]
            pos += 1
            value = (value << 7) | (byte & 0x7F)
            if not byte & 0x80:
                return value

    pos = 1                        # WBXML version
    if mb_uint() == 0:             # public id 0: string table index follows
        mb_uint()
    mb_uint()                      # charset
    table_len = mb_uint()
    strtab = data[pos:pos + table_len]
    pos += table_len
    page = 0
    path = []
    target = [(0, 0x2D), (0, 0x2C), (0, 0x27), (0, 0x17)]
    while pos < len(data):
        tok = data[pos]
        pos += 1
        if tok == 0x00:            # SWITCH_PAGE
            page = data[pos]
            pos += 1
        elif tok == 0x01:          # END
            if path:
                path.pop()
        elif tok in (0x03, 0x83, 0xC3):
            if tok == 0x03:        # STR_I
                end = data.index(0, pos)
                text = data[pos:end]
                pos = end + 1
            elif tok == 0x83:      # STR_T
                off = mb_uint()
                text = strtab[off:strtab.index(0, off)]
            else:                  # OPAQUE
                n = mb_uint()
                text = data[pos:pos + n]
                pos += n
            if path == target:
                return text.decode("utf-8", "replace")
        elif tok == 0x02:          # ENTITY
            mb_uint()
        elif tok & 0x80:           # attributes are not used by SyncML
            return None
        elif tok & 0x40:           # tag with content
            path.append((page, tok & 0x3F))
        if len(path) >= 2 and path[:2] != target[:2]:
            return None            # left SyncHdr without finding it
    return None


def device_id(data, content_type):
    try:
        if "wbxml" in (content_type or ""):
            return wbxml_source_locuri(bytes(data))
        m = re.search(rb"<SyncHdr\b.*?<Source\b[^>]*>\s*<LocURI\b[^>]*>\s*(.*?)\s*</LocURI>", bytes(data), re.S)
        return m.group(1).decode("utf-8", "replace") if m else None
    except Exception:
        log.exception("cannot extract the device ID")
        return None


def peers_dir():
    return os.path.join(os.environ["XDG_CONFIG_HOME"], "syncevolution", "server", "peers")


def known_device(dev):
    try:
        names = os.listdir(peers_dir())
    except OSError:
        return False
    for name in names:
        try:
            with open(os.path.join(peers_dir(), name, "config.ini"), encoding="utf-8") as f:
                if ("remoteDeviceId = %s" % dev) in f.read().splitlines():
                    return True
        except OSError:
            pass
    return False


def peer_name(dev):
    # SyncEvolution escapes '-' and '_' in log dir names: only [a-z0-9]
    safe = re.sub(r"[^a-z0-9]", "", dev.lower())[:24]
    return "dev%s%s" % (safe, hashlib.sha1(dev.encode()).hexdigest()[:8])


def syncevolution(*args):
    r = subprocess.run([SYNCEVOLUTION, "--daemon=no", "--configure"] + list(args),
                       stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    if r.returncode:
        raise RuntimeError("syncevolution --configure %s: rc=%d %s" % (" ".join(args), r.returncode,
                                                                       r.stderr.decode(errors="replace")))


_provision_lock = threading.Lock()


def provision(dev):
    with _provision_lock:
        if known_device(dev):
            return
        with open(os.path.join(SERVER_DIR, "run", "credentials"), encoding="utf-8") as f:
            user, password = f.read().split("\n")[:2]
        peer = peer_name(dev) + "@server"
        syncevolution("--template", "none",
                      "--sync-property", "PeerIsClient=1",
                      "--sync-property", "remoteDeviceId=" + dev,
                      "--sync-property", "username=" + user,
                      "--sync-property", "password=" + password,
                      "--sync-property", "loglevel=" + os.environ.get("SYNCML_LOGLEVEL", "1"),
                      "--sync-property", "printChanges=0",
                      "--sync-property", "dumpData=0",
                      "--sync-property", "maxMsgSize=" + os.environ.get("SYNCML_MAXMSGSIZE", "150000"),
                      "--sync-property", "maxObjSize=" + os.environ.get("SYNCML_MAXOBJSIZE", "4000000"),
                      "--datastore-property", "sync=two-way",
                      peer, *DATABASES)
        for db, alias in ALIASES.items():
            syncevolution("--datastore-property", "uri=" + alias, peer, db)
        for db, fmt in SYNC_FORMATS.items():
            force = os.environ.get("SYNCML_FORCE_SYNC_FORMAT") == "1"
            syncevolution("--datastore-property", "syncFormat=" + fmt,
                          "--datastore-property", "forceSyncFormat=" + ("1" if force else "0"), peer, db)
        with open(os.path.join(SERVER_DIR, "run", "clients"), "a", encoding="utf-8") as f:
            f.write(dev + "\n")
        log.info("registered client device ID %r as %s", dev, peer)


_orig_session_start = server["SyncMLSession"].start


def _session_start(self, request, config, url):
    data = request.content.read()
    request.content.seek(0, 0)
    dev = device_id(data, request.getHeader("content-type"))
    if dev:
        try:
            provision(dev)
        except Exception:
            log.exception("provisioning %r failed", dev)
    return _orig_session_start(self, request, config, url)


server["SyncMLSession"].start = _session_start

sys.argv[0] = "syncevo-http-server"
server["main"]()
