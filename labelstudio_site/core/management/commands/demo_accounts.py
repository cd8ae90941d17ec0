from django.core.management.base import BaseCommand, CommandParser

from labelstudio_site.core.services import demo_accounts_ensure


class Command(BaseCommand):
    help = "Create or reset the demo admin and demo labeler accounts and print their credentials."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--admin", default="admin", help="demo admin username (default: admin)")
        parser.add_argument("--admin-password", default="albumgen-admin", help="default: albumgen-admin")
        parser.add_argument("--labeler", default="labeler", help="demo labeler username (default: labeler)")
        parser.add_argument("--labeler-password", default="albumgen-labeler", help="default: albumgen-labeler")

    def handle(self, *args: object, **options: str) -> None:
        demo_accounts_ensure(
            admin_username=options["admin"],
            admin_password=options["admin_password"],
            labeler_username=options["labeler"],
            labeler_password=options["labeler_password"],
        )
        self.stdout.write(f"  admin:   {options['admin']} / {options['admin_password']}")
        self.stdout.write(f"  labeler: {options['labeler']} / {options['labeler_password']}")
