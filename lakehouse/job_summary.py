"""The one-line summary every job ends with, so a log reader sees the outcome at a glance."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field


class JobFailed(RuntimeError):
    """A job ran and failed for a reason its message states (quality halt, bad input, nothing to
    train on). The Glue entry scripts print the message and exit 1, without a traceback."""


@dataclass
class JobSummary:
    job: str
    rows_read: int = 0
    rows_written: int = 0
    rows_quarantined: int = 0
    versions: dict[str, int | None] = field(default_factory=dict)
    details: dict[str, object] = field(default_factory=dict)

    def line(self) -> str:
        versions = " ".join(f"{name}@v{ver}" for name, ver in self.versions.items()) or "none"
        extra = "".join(f" {k}={v}" for k, v in self.details.items() if not isinstance(v, dict | list))
        return (
            f"[{self.job}] rows read={self.rows_read} written={self.rows_written} "
            f"quarantined={self.rows_quarantined}{extra} | delta versions: {versions}"
        )

    def to_json(self) -> str:
        return json.dumps(asdict(self), default=str, sort_keys=True)
