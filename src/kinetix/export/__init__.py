"""List files, torchvision link trees, tables and WebDataset shards from a root's manifest."""

from kinetix.export.config import ExportConfig, ExportFormat, ShardSize
from kinetix.export.job import ExportReport, SplitReport, export_root
from kinetix.export.links import LinkTreeWriter
from kinetix.export.lists import ListFormat, ListWriter, list_format
from kinetix.export.records import ExportRecord, Writer
from kinetix.export.tables import CsvWriter, ParquetWriter
from kinetix.export.webdataset import ShardWriter

__all__ = [
    "CsvWriter",
    "ExportConfig",
    "ExportFormat",
    "ExportRecord",
    "ExportReport",
    "LinkTreeWriter",
    "ListFormat",
    "ListWriter",
    "ParquetWriter",
    "ShardSize",
    "ShardWriter",
    "SplitReport",
    "Writer",
    "export_root",
    "list_format",
]
