"""Link trees: ``OUT/{split}/{label_folder}/{key}.mp4`` pointing at a root's clips, never copies.

``--format torchvision`` names folders as ``torchvision.datasets.Kinetics`` does (spaces to
``_``, ``'()`` dropped); ``--link-dir`` gives lists paths without whitespace the same way.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

from kinetix.errors import ConfigError
from kinetix.export.records import ExportRecord, WriterBase
from kinetix.store.layout import LabelStyle, label_folder

log = logging.getLogger(__name__)


class LinkTreeWriter(WriterBase):
    """Symlinks (absolute, so the tree can move) or hard links to each clip.

    Rerunning keeps links that already point at the right file; on ``close`` links of the
    exported splits that this run did not write (clips since verified bad) are removed.
    """

    def __init__(
        self,
        out: Path,
        style: LabelStyle = LabelStyle.TORCHVISION,
        *,
        hardlink: bool = False,
        suffix: str = "",
    ):
        self.out = out
        self.style = style
        self.hardlink = hardlink
        self.suffix = suffix  # e.g. ".mp4" on frame folders, as PaddleVideo names them
        self.count = 0
        self.created = 0
        self.kept = 0
        self.removed = 0
        self._written: set[Path] = set()
        self._splits: set[str] = set()

    def link(self, record: ExportRecord) -> ExportRecord:
        """Make the link of ``record`` and return the record as seen through it."""
        target = record.media.resolve()
        if not target.exists():
            raise ConfigError(
                f"{record.media} is in the manifest but not on disk; "
                "run 'kinetix verify' on the root"
            )
        name = Path(record.relpath).name
        if self.suffix and not name.endswith(self.suffix):
            name += self.suffix
        rel = f"{record.split}/{label_folder(record.row.label, self.style)}/{name}"
        dest = self.out / rel
        self._place(dest, target, record.kind)
        self._written.add(dest)
        self._splits.add(record.split)
        self.count += 1
        return record.moved(self.out, rel)

    def write(self, record: ExportRecord) -> None:
        self.link(record)

    def _place(self, dest: Path, target: Path, kind: str) -> None:
        if dest.is_symlink() and not self.hardlink and Path(os.readlink(dest)) == target:
            self.kept += 1
            return
        if self.hardlink and dest.exists() and not dest.is_symlink() and dest.samefile(target):
            self.kept += 1
            return
        if self.hardlink and kind == "frames":
            raise ConfigError("frame folders cannot be hard-linked; drop --hardlink")
        dest.parent.mkdir(parents=True, exist_ok=True)
        tmp = dest.with_name(f".{dest.name}.{os.getpid()}.tmp")
        tmp.unlink(missing_ok=True)
        try:
            if self.hardlink:
                os.link(target, tmp)
            else:
                os.symlink(target, tmp, target_is_directory=kind == "frames")
        except OSError as exc:
            hint = (
                " (hard links need the same filesystem; drop --hardlink)" if self.hardlink else ""
            )
            raise ConfigError(f"cannot link {dest} -> {target}: {exc}{hint}") from exc
        os.replace(tmp, dest)
        self.created += 1

    def close(self) -> None:
        for split in sorted(self._splits):
            for path in sorted((self.out / split).glob("*/*")):
                if path in self._written:
                    continue
                # hard links are only recognisable by their link count; never touch other files
                ours = path.is_symlink() or (
                    self.hardlink and path.is_file() and path.stat().st_nlink > 1
                )
                if ours:
                    path.unlink()
                    self.removed += 1
        if self.removed:
            log.info("removed %d stale links under %s", self.removed, self.out)
