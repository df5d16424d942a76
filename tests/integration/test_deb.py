"""The Debian package (scripts/deb.sh = `make deb`): lintian reports no error and no warning; `dpkg -i` installs
/usr/sbin/ficus, the conffiles /etc/ficus/ficus.yaml and /etc/logrotate.d/ficus, the unit and the man pages, and creates
the `ficus` system user; the installed binary accepts the installed configuration (-t); the installed unit verifies;
the installed ficus, run as user ficus, is rotated by the installed logrotate snippet without losing a line; purge
removes it all. Tests run as root on the CI machine."""
import gzip
import os
import pwd
import re
import shutil
import subprocess

import pytest

from conftest import FICUS_BIN, SLOW, SOURCE_DIR, free_port, wait_for

pytestmark = pytest.mark.timeout(600 * SLOW)


def run(*cmd, check=True, timeout=300, **kw):
    r = subprocess.run(list(cmd), capture_output=True, text=True, timeout=timeout * SLOW, **kw)
    if check:
        assert r.returncode == 0, f"{' '.join(cmd)}: exit {r.returncode}\n{r.stdout}\n{r.stderr}"
    return r


def installed():
    r = run("dpkg-query", "-W", "-f=${db:Status-Abbrev}", "ficus", check=False)
    return r.returncode == 0 and r.stdout.startswith("ii")


@pytest.fixture(scope="module")
def deb(tmp_path_factory):
    assert os.geteuid() == 0, "the package suite installs with dpkg: it runs as root (as CI does)"
    out = tmp_path_factory.mktemp("deb")
    r = run(os.path.join(SOURCE_DIR, "scripts", "deb.sh"), os.path.dirname(FICUS_BIN), str(out))
    version = re.search(r"^project\(ficus VERSION ([0-9.]+)", open(os.path.join(SOURCE_DIR, "CMakeLists.txt")).read(),
                        re.M).group(1)
    path = out / f"ficus_{version}_amd64.deb"
    assert path.exists(), r.stdout
    return path


@pytest.fixture(scope="module")
def install(deb):
    run("dpkg", "-i", str(deb))
    yield
    if installed():
        run("dpkg", "--purge", "ficus")


def test_lintian_clean(deb):
    r = run("lintian", "--tag-display-limit", "0", str(deb), check=False)
    tags = [l for l in r.stdout.splitlines() if re.match(r"^[EW]: ", l)]
    assert not tags, r.stdout
    assert r.returncode == 0, r.stdout + r.stderr


def test_package_contents(deb):
    listing = run("dpkg-deb", "-c", str(deb)).stdout
    for path in ("./usr/sbin/ficus", "./etc/ficus/ficus.yaml", "./etc/logrotate.d/ficus", "./lib/systemd/system/ficus.service",
                 "./usr/share/man/man8/ficus.8.gz", "./usr/share/man/man5/ficus.yaml.5.gz", "./usr/share/doc/ficus/copyright"):
        assert re.search(r"root/root .* " + re.escape(path) + "$", listing, re.M), path
    ctrl = run("dpkg-deb", "-f", str(deb), "Package", "Architecture", "Depends").stdout
    assert "Package: ficus" in ctrl and "Architecture: amd64" in ctrl
    assert "libh2o-evloop" in ctrl and "libsystemd0" in ctrl and "adduser" in ctrl
    info = run("dpkg-deb", "-I", str(deb), "conffiles").stdout.split()
    assert info == ["/etc/ficus/ficus.yaml", "/etc/logrotate.d/ficus"]


def test_installed(install):
    assert installed()
    user = pwd.getpwnam("ficus")
    assert user.pw_uid < 1000 and user.pw_shell in ("/usr/sbin/nologin", "/bin/false"), user
    st = os.stat("/var/log/ficus")
    assert st.st_uid == user.pw_uid and oct(st.st_mode & 0o777) == "0o750"
    r = run("/usr/sbin/ficus", "-t", "-c", "/etc/ficus/ficus.yaml", cwd="/etc/ficus")
    assert r.stdout.strip() == "ficus: /etc/ficus/ficus.yaml: configuration OK"
    assert run("/usr/sbin/ficus", "--version").stdout.startswith("ficus ")
    # the installed unit, with the installed binary and man pages (Documentation=man:ficus(8) is checked too)
    r = run("systemd-analyze", "verify", "/lib/systemd/system/ficus.service", check=False)
    assert r.returncode == 0 and r.stderr.strip() == "", r.stderr
    with gzip.open("/usr/share/man/man8/ficus.8.gz", "rt") as f:
        assert ".TH \"FICUS\" \"8\"" in f.read()
    r = run("man", "-w", "ficus.yaml")
    assert r.stdout.strip() == "/usr/share/man/man5/ficus.yaml.5.gz"


def test_logrotate_snippet_rotates_the_running_ficus(install, tmp_path):
    """The installed ficus as user ficus with the unit's socket; the installed snippet rotates it (ficus -s reopen)."""
    port, admin = free_port(), free_port()
    with open("/etc/ficus/ficus.yaml") as f:
        text = f.read()
    assert '"127.0.0.1:8080"' in text and '"127.0.0.1:9901"' in text
    os.makedirs("/run/ficus", exist_ok=True)  # what the unit's RuntimeDirectory= makes
    shutil.chown("/run/ficus", "ficus", "ficus")
    conf = "/run/ficus/test-ficus.yaml"  # readable by user ficus (pytest's tmp directories are not)
    with open(conf, "w") as f:
        f.write(text.replace("127.0.0.1:8080", f"127.0.0.1:{port}").replace("127.0.0.1:9901", f"127.0.0.1:{admin}"))
    log = "/var/log/ficus/access.log"
    for p in (log, log + ".1"):
        if os.path.exists(p):
            os.unlink(p)
    proc = subprocess.Popen(["/usr/sbin/ficus", "-c", conf, "-S", "/run/ficus/ficus.sock"], user="ficus", group="ficus",
                            extra_groups=[], cwd="/etc/ficus", stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        import httpx
        wait_for(lambda: os.path.exists("/run/ficus/ficus.sock") or proc.poll() is not None, 15 * SLOW, what="control socket")
        assert proc.poll() is None, proc.stderr.read()
        sent = 0
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=10 * SLOW) as c:
            for _ in range(20):
                assert "ficus is running" in c.get("/").text
                sent += 1
            wait_for(lambda: os.path.getsize(log) > 0, 10 * SLOW, what="lines in access.log")
            assert os.stat(log).st_uid == pwd.getpwnam("ficus").pw_uid
            r = run("logrotate", "-v", "-f", "-s", str(tmp_path / "state"), "/etc/logrotate.d/ficus")
            assert os.path.exists(log + ".1"), r.stdout + r.stderr
            for _ in range(10):
                c.get("/")
                sent += 1
            wait_for(lambda: os.path.exists(log) and os.path.getsize(log) > 0, 10 * SLOW, what="lines in the new access.log")
        proc.terminate()
        proc.wait(30 * SLOW)
        assert proc.returncode == 0, proc.stderr.read()
        counted = [len([l for l in open(p).read().splitlines() if l.strip()]) for p in (log + ".1", log)]
        assert sum(counted) == sent and all(counted), counted
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        shutil.rmtree("/run/ficus", ignore_errors=True)


def test_purge_removes_it(install):
    run("dpkg", "--purge", "ficus")
    assert not installed()
    for p in ("/usr/sbin/ficus", "/etc/ficus/ficus.yaml", "/lib/systemd/system/ficus.service", "/var/log/ficus"):
        assert not os.path.exists(p), p
