#!/usr/bin/env python
"""Django's command-line utility for AlbumGen Studio."""

import sys


def main() -> None:
    from labelstudio_site.startup import require_valid_settings

    require_valid_settings()
    from django.core.management import execute_from_command_line

    execute_from_command_line(sys.argv)


if __name__ == "__main__":
    main()
