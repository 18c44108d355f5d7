"""Every translatable string in the code and templates has a Simplified Chinese translation.

``makemessages`` runs on a copy of the tracked sources (so the real catalogue is not rewritten)
and the catalogue it produces must have no untranslated and no fuzzy entry: a string added
without a translation, or changed so that only a near match remains, fails here instead of
showing English on a Chinese page.
"""

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from django.conf import settings

ROOT = Path(settings.BASE_DIR)
CATALOGUE = Path("locale/zh_Hans/LC_MESSAGES/django.po")


def _tracked_sources() -> list[str]:
    listed = subprocess.run(["git", "ls-files"], cwd=ROOT, capture_output=True, text=True, check=True).stdout
    return [path for path in listed.splitlines() if path.endswith((".py", ".html", ".txt", ".po"))]


def _entries(catalogue: Path, option: str) -> list[str]:
    """The msgids ``msgattrib option`` keeps (each as its quoted lines joined), the header left out."""
    out = subprocess.run(
        ["msgattrib", option, "--no-obsolete", str(catalogue)], capture_output=True, text=True, check=True
    ).stdout
    msgids = []
    for block in out.split("\n\n"):
        lines = block.splitlines()
        starts = [n for n, line in enumerate(lines) if line.startswith("msgid ")]
        if not starts:
            continue
        quoted = [lines[starts[0]].removeprefix("msgid ")]
        for line in lines[starts[0] + 1 :]:
            if not line.startswith('"'):
                break  # msgstr
            quoted.append(line)
        msgid = "".join(part[1:-1] for part in quoted)
        if msgid:  # the header's msgid is empty
            msgids.append(msgid)
    return msgids


@pytest.mark.skipif(shutil.which("msgattrib") is None or not (ROOT / ".git").exists(), reason="needs gettext and git")
def test_every_string_has_a_chinese_translation(tmp_path):
    for path in _tracked_sources():
        target = tmp_path / path
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(ROOT / path, target)
    env = {**os.environ, "PORTAL_ENV": "test", "PORTAL_VAR_DIR": str(tmp_path / "var")}
    subprocess.run(
        [sys.executable, "manage.py", "makemessages", "-l", "zh_Hans", "--ignore", "tests/*", "--ignore", "bench/*"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        check=True,
    )

    untranslated = _entries(tmp_path / CATALOGUE, "--untranslated")
    fuzzy = _entries(tmp_path / CATALOGUE, "--only-fuzzy")

    assert untranslated == [], f"add their translations to {CATALOGUE}"
    assert fuzzy == [], f"translate these in {CATALOGUE} (only a near match was found)"
