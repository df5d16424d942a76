"""Man pages: ficus(8) and ficus.yaml(5) generated from the README (scripts/man.sh, pandoc) render with no groff or man
warning (lintian's own command, 80 and 120 columns), and carry what they must: every configuration key of the README's
tables, every command-line option of `ficus --help`, the signals and exit codes."""
import os
import re
import subprocess

import pytest

from conftest import FICUS_BIN, SOURCE_DIR


@pytest.fixture(scope="module")
def pages(tmp_path_factory):
    out = tmp_path_factory.mktemp("man")
    r = subprocess.run([os.path.join(SOURCE_DIR, "scripts", "man.sh"), str(out)], capture_output=True, text=True,
                       timeout=120)
    assert r.returncode == 0, r.stderr
    return out


def render(page, width):
    env = {"PATH": os.environ["PATH"], "LC_ALL": "C.UTF-8", "MANWIDTH": str(width), "MANROFFSEQ": ""}
    r = subprocess.run(["man", "--warnings", "-E", "UTF-8", "-l", "-Tutf8", "-Z", str(page)], capture_output=True,
                       env=env, timeout=60)
    assert r.returncode == 0, r.stderr
    return r.stderr.decode(), r.stdout


def plain(page):
    env = {"PATH": os.environ["PATH"], "LC_ALL": "C.UTF-8", "MANWIDTH": "200"}
    r = subprocess.run(["man", "-l", str(page)], capture_output=True, text=True, env=env, timeout=60)
    assert r.returncode == 0, r.stderr
    return re.sub(r".\x08", "", r.stdout)


@pytest.mark.parametrize("name", ["ficus.8", "ficus.yaml.5"])
@pytest.mark.parametrize("width", [80, 120])
def test_renders_without_warnings(pages, name, width):
    err, out = render(pages / name, width)
    assert err == "", err
    assert len(out) > 2000


def readme_section(title):
    with open(os.path.join(SOURCE_DIR, "README.md")) as f:
        text = f.read()
    m = re.search(r"^## " + re.escape(title) + r"\n(.*?)(?=^## |\Z)", text, re.M | re.S)
    assert m, title
    return m.group(1)


def test_yaml_page_has_every_key_of_the_readme(pages):
    text = plain(pages / "ficus.yaml.5")
    assert "NAME" in text and "ficus.yaml - configuration file" in text
    keys = set()
    for line in readme_section("Configuration").splitlines():
        m = re.match(r"^\| `([a-z_.]+)`", line)
        if m:
            keys.add(m.group(1))
    assert len(keys) > 30, keys
    missing = [k for k in sorted(keys) if k not in text]
    assert not missing, missing


def test_command_page_has_options_signals_exit_codes(pages):
    text = plain(pages / "ficus.8")
    for s in ("SYNOPSIS", "EXIT STATUS", "FILES", "SEE ALSO", "SIGHUP", "SIGUSR1", "SIGUSR2", "SIGTERM", "/readyz",
              "ficus -s reload", "/etc/ficus/ficus.yaml"):
        assert s in text, s
    help_text = subprocess.run([FICUS_BIN, "--help"], capture_output=True, text=True, timeout=10).stdout
    options = set(re.findall(r"^\s+(-[a-zA-Z]),", help_text, re.M))
    assert {"-c", "-t", "-s", "-S"} <= options, options
    for o in sorted(options):
        assert re.search(r"(^|[\s\[])" + re.escape(o) + r"\b", text), o
