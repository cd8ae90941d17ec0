import sys
import time
from argparse import ArgumentParser
from pathlib import Path
from typing import Any

from django.core.management.base import BaseCommand

from generation.musicoset import MusicOSetError
from labelstudio_site.catalog.services import catalog_import


class Command(BaseCommand):
    help = (
        "Import a MusicOSet directory (albums, artists, songs, tracks, acoustic features; optional splits.csv) "
        "and its covers; re-importing updates rows and never duplicates them. Exit 2 with one sentence when the "
        "directory or a required file is missing."
    )

    def add_arguments(self, parser: ArgumentParser) -> None:
        parser.add_argument("directory", type=Path, help="the MusicOSet folder, e.g. fixtures/musicoset")
        parser.add_argument(
            "--covers", type=Path, default=None, help="folder of <album_id>.<jpg|jpeg|png|webp> cover files"
        )

    def handle(self, *args: Any, **options: Any) -> None:
        started = time.perf_counter()
        try:
            result = catalog_import(directory=options["directory"], covers_dir=options["covers"])
        except MusicOSetError as exc:
            self.stderr.write(f"Cannot import MusicOSet: {exc}")
            sys.exit(2)
        report = result.report
        for name, counts in report.files.items():
            self.stdout.write(f"{name}: read {counts.read}, kept {counts.kept}, skipped {counts.skipped}")
        for skipped in report.skipped:
            self.stdout.write(str(skipped))
        for album_id in result.covers_unreadable:
            self.stdout.write(f"cover of album {album_id} is not a readable image; skipped")
        self.stdout.write(
            f"imported {result.albums.total} albums ({result.albums.created} new, {result.albums.updated} updated), "
            f"{result.songs.total} songs ({result.songs.created} new), {result.artists.total} artists "
            f"({result.artists.created} new), {result.tracks} tracks, {len(result.genres)} genres; "
            f"{result.covers_stored} covers ({result.covers_new_files} new files, "
            f"{len(report.albums_without_cover)} albums without a cover file) "
            f"in {time.perf_counter() - started:.1f} s"
        )
