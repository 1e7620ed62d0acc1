"""docs/protocol.md and ``imu_har.protocol.topics`` list the same topics."""

from __future__ import annotations

import re
from pathlib import Path

from imu_har.protocol import topics

DOC = Path(__file__).resolve().parents[2] / "docs" / "protocol.md"


def documented_topics() -> list[str]:
    """The first-column topics of the table under '## Topics' in docs/protocol.md."""
    text = DOC.read_text()
    section = text.split("\n## Topics\n", 1)[1].split("\n## ", 1)[0]
    return re.findall(r"^\| `([^`]+)` \|", section, flags=re.M)


def as_documented(template: topics.TopicTemplate) -> str:
    """A template as the table writes it: ``{root}`` as its default, variables as ``<name>``."""
    return re.sub(r"\{(\w+)\}", r"<\1>", template.pattern.replace("{root}", template.default_root))


def test_the_topic_table_and_the_templates_agree() -> None:
    documented = documented_topics()
    assert len(documented) == len(set(documented)), "a topic is listed twice"
    in_code = {as_documented(t) for t in topics.templates().values()}
    assert set(documented) - in_code == set(), "documented but not in imu_har.protocol.topics"
    assert in_code - set(documented) == set(), "in imu_har.protocol.topics but not documented"


def test_the_check_would_see_a_missing_row() -> None:
    extra = topics.TopicTemplate("{root}/{device}/nothing")
    assert as_documented(extra) not in documented_topics()
