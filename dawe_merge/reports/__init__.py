"""Report files (JSON, CSV, markdown) and plots under results/."""
from dawe_merge.reports.writer import write_report

__all__ = ["write_report"]
