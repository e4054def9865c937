"""Result records (one JSON per run) and the README tables generated from them."""

from .readme import END, START, render_tables, reported_numbers, update_readme
from .records import DATA_KINDS, RecordError, RunInfo, load_records, make_record, write_record

__all__ = ["DATA_KINDS", "END", "START", "RecordError", "RunInfo", "load_records", "make_record", "render_tables",
           "reported_numbers", "update_readme", "write_record"]
