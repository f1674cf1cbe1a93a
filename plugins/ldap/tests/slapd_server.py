"""A private OpenLDAP ``slapd`` for the tests: its own config, directory and port on 127.0.0.1.

``with Slapd(tmp_dir) as ldap: ldap.url`` writes a ``slapd.conf`` (schemas core, cosine,
inetorgperson, nis; an mdb database with the memberof overlay; ACLs that let only the service
account read entries and anyone bind), starts ``/usr/sbin/slapd -f CONF -h ldap://127.0.0.1:PORT/
-d 0`` as a child (foreground: it never daemonizes, and it is stopped by its PID), waits for it to
answer a root DSE search (bounded), and loads :data:`DIRECTORY` with ``ldapadd``. It never uses
or touches a system slapd. A missing ``slapd`` or one that does not come up raises: the tests
fail, they never skip.
"""

from __future__ import annotations

import shutil
import socket
import subprocess
import time
from pathlib import Path

SLAPD = "/usr/sbin/slapd"
SUFFIX = "dc=example,dc=org"
ROOT_DN = f"cn=admin,{SUFFIX}"
ROOT_PW = "root-secret"  # noqa: S105 - a throwaway test directory's own
SERVICE_DN = f"cn=sidecar,ou=services,{SUFFIX}"
SERVICE_PW = "svc-secret"  # noqa: S105
PEOPLE = f"ou=people,{SUFFIX}"
GROUPS = f"ou=groups,{SUFFIX}"
#: user -> password
PASSWORDS = {"alice": "alice-pw", "bob": "bob-pw", "eve": "eve-pw", "ann,ops": "comma-pw"}
START_WAIT = 10.0


def _person(uid: str, dn_uid: str | None = None) -> str:
    rdn = dn_uid or uid
    return (
        f"dn: uid={rdn},{PEOPLE}\nobjectClass: inetOrgPerson\nuid: {uid}\ncn: {uid}\nsn: {uid}\n"
        f"userPassword: {PASSWORDS[uid]}\n"
    )


#: alice: groupOfNames ops (so memberOf) and posixGroup devs (memberUid); bob: staff;
#: eve: no group; "ann,ops": a name that needs DN escaping
DIRECTORY = "\n".join(
    [
        f"dn: {SUFFIX}\nobjectClass: dcObject\nobjectClass: organization\ndc: example\n"
        "o: Example\n",
        f"dn: ou=services,{SUFFIX}\nobjectClass: organizationalUnit\nou: services\n",
        f"dn: {SERVICE_DN}\nobjectClass: person\ncn: sidecar\nsn: sidecar\n"
        f"userPassword: {SERVICE_PW}\n",
        f"dn: {PEOPLE}\nobjectClass: organizationalUnit\nou: people\n",
        f"dn: {GROUPS}\nobjectClass: organizationalUnit\nou: groups\n",
        _person("alice"),
        _person("bob"),
        _person("eve"),
        _person("ann,ops", "ann\\,ops"),
        f"dn: cn=ops,{GROUPS}\nobjectClass: groupOfNames\ncn: ops\nmember: uid=alice,{PEOPLE}\n",
        f"dn: cn=staff,{GROUPS}\nobjectClass: groupOfNames\ncn: staff\nmember: uid=bob,{PEOPLE}\n",
        f"dn: cn=devs,{GROUPS}\nobjectClass: posixGroup\ncn: devs\ngidNumber: 5000\n"
        "memberUid: alice\n",
    ]
)

CONF = """\
include /etc/ldap/schema/core.schema
include /etc/ldap/schema/cosine.schema
include /etc/ldap/schema/inetorgperson.schema
include /etc/ldap/schema/nis.schema
modulepath /usr/lib/ldap
moduleload back_mdb
moduleload memberof
pidfile {dir}/slapd.pid
database mdb
maxsize 10485760
suffix "{suffix}"
rootdn "{root_dn}"
rootpw {root_pw}
directory {dir}/db
access to attrs=userPassword by anonymous auth by * none
access to * by dn.exact="{service}" read by self read by * none
overlay memberof
"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


class Slapd:
    """One private slapd (see the module docstring); ``start_seconds`` is how long it took."""

    def __init__(
        self, root: Path, port: int | None = None, tls: tuple[str, str] | None = None
    ) -> None:
        self.root = root
        self.port = port or free_port()
        #: (certificate, key) files: StartTLS on ``url`` and ldaps on ``ldaps_url`` too
        self.tls = tls
        self.ldaps_port = free_port() if tls else 0
        self.process: subprocess.Popen[bytes] | None = None
        self.start_seconds = 0.0

    @property
    def url(self) -> str:
        return f"ldap://127.0.0.1:{self.port}"

    @property
    def ldaps_url(self) -> str:
        return f"ldaps://127.0.0.1:{self.ldaps_port}"

    def start(self, *, load: bool = True) -> Slapd:
        if shutil.which(SLAPD) is None:
            raise RuntimeError(f"{SLAPD} is not installed (apt-get install slapd ldap-utils)")
        (self.root / "db").mkdir(parents=True, exist_ok=True)
        conf = self.root / "slapd.conf"
        text = CONF.format(
            dir=self.root, suffix=SUFFIX, root_dn=ROOT_DN, root_pw=ROOT_PW, service=SERVICE_DN
        )
        urls = f"ldap://127.0.0.1:{self.port}/"
        if self.tls is not None:
            cert, key = self.tls
            text = f"TLSCertificateFile {cert}\nTLSCertificateKeyFile {key}\n" + text
            urls += f" ldaps://127.0.0.1:{self.ldaps_port}/"
        conf.write_text(text)
        log = (self.root / "slapd.log").open("ab")
        began = time.monotonic()
        self.process = subprocess.Popen(  # noqa: S603 - a fixed binary and our own arguments
            [SLAPD, "-f", str(conf), "-h", urls, "-d", "0"],
            stdout=log,
            stderr=log,
        )
        deadline = began + START_WAIT
        while not self._answers():
            if self.process.poll() is not None or time.monotonic() > deadline:
                self.stop()
                text = (self.root / "slapd.log").read_text(errors="replace")[-2000:]
                raise RuntimeError(f"slapd did not come up on {self.url}: {text}")
            time.sleep(0.02)
        self.start_seconds = time.monotonic() - began
        if load:
            self.ldapadd(DIRECTORY)
        return self

    def _answers(self) -> bool:
        done = subprocess.run(  # noqa: S603
            [
                "/usr/bin/ldapsearch",
                "-x",
                "-H",
                self.url,
                "-b",
                "",
                "-s",
                "base",
                "-o",
                "nettimeout=1",
            ],
            capture_output=True,
            timeout=5,
        )
        return done.returncode == 0

    def ldapadd(self, ldif: str) -> None:
        done = subprocess.run(  # noqa: S603
            ["/usr/bin/ldapadd", "-x", "-H", self.url, "-D", ROOT_DN, "-w", ROOT_PW],
            input=ldif.encode(),
            capture_output=True,
            timeout=20,
        )
        if done.returncode != 0:
            raise RuntimeError(f"ldapadd failed: {done.stderr.decode(errors='replace')}")

    def stop(self) -> None:
        """Stop it by its PID (bounded: SIGTERM, then SIGKILL); its files stay for a restart."""
        if self.process is None:
            return
        self.process.terminate()
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(timeout=10)
        self.process = None

    def __enter__(self) -> Slapd:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
