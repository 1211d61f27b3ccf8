"""README.md and README.zh-TW.md stay in step: the same sections, in the same order, at the same levels.

Headings are matched through ``SECTIONS`` (English -> 繁體中文). A section added to one README and not
the other, a renamed heading, or a reordering fails here; add the pair below when adding a section.
"""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

SECTIONS = {
    "Quick start": "快速開始",
    "The dashboard": "管理介面",
    "Local mode": "本機模式",
    "Commands": "指令",
    "Configuration": "設定",
    "E-invoices": "電子發票",
    "Deploying to AWS": "部署到 AWS",
    "Architecture": "架構",
    "Deposit and withdrawal lifecycles": "儲值與提領的生命週期",
    "Tests": "測試",
    "Browser tests and screenshots": "瀏覽器測試與截圖",
}


def headings(path: Path) -> list[tuple[int, str]]:
    """(level, text) of every ``##``-or-deeper heading outside code blocks."""
    found: list[tuple[int, str]] = []
    in_code = False
    for line in path.read_text(encoding="utf-8").splitlines():
        if line.startswith("```"):
            in_code = not in_code
            continue
        match = re.match(r"^(#{2,6})\s+(.+?)\s*#*\s*$", line)
        if match and not in_code:
            found.append((len(match.group(1)), match.group(2)))
    return found


def test_both_readmes_have_the_same_sections() -> None:
    english = headings(ROOT / "README.md")
    chinese = headings(ROOT / "README.zh-TW.md")
    unmapped = [text for _, text in english if text not in SECTIONS]
    assert not unmapped, f"README.md sections without a 繁體中文 counterpart in SECTIONS: {unmapped}"
    assert chinese == [(level, SECTIONS[text]) for level, text in english]


def test_the_section_check_sees_a_difference(tmp_path: Path) -> None:
    # The check itself must notice a missing section (and ignore headings inside code blocks).
    readme = tmp_path / "README.md"
    readme.write_text("# t\n## Quick start\n```sh\n## not a heading\n```\n### Local mode\n", encoding="utf-8")
    assert headings(readme) == [(2, "Quick start"), (3, "Local mode")]


def test_each_readme_links_to_the_other() -> None:
    assert "(README.zh-TW.md)" in (ROOT / "README.md").read_text(encoding="utf-8")
    assert "(README.md)" in (ROOT / "README.zh-TW.md").read_text(encoding="utf-8")


def test_stilted_phrases_are_gone() -> None:
    text = (ROOT / "README.zh-TW.md").read_text(encoding="utf-8")
    for phrase in ("組裝根", "只聽 127.0.0.1", "以非零狀態結束"):
        assert phrase not in text, phrase
