"""``field__any_of=ids``: membership in a large id set, as one array parameter on PostgreSQL."""

from typing import Any

from django.db.models import Field
from django.db.models.lookups import In


@Field.register_lookup
class AnyOf(In):
    """``= ANY(%s)`` with the ids as one array on PostgreSQL; the ordinary ``IN (...)`` list elsewhere.

    Django binds one parameter per id of an ``__in`` lookup: in a preference export, building the IN lists of ~2,000
    variant ids per batch cost about a tenth of the export's time (profiled at 1M ratings).
    """

    lookup_name = "any_of"

    def as_postgresql(self, compiler: Any, connection: Any) -> tuple[str, list[Any]]:
        lhs, lhs_params = self.process_lhs(compiler, connection)
        return f"{lhs} = ANY(%s)", [*lhs_params, list(self.rhs)]
