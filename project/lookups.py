"""`field__any_of=[...]`: the rows of `field__in=[...]`, sent as one array parameter on
PostgreSQL (`field = ANY(%s)`). An IN list has a placeholder per value, which psycopg splits
and quotes in Python on every call: for a sweep's 2,000 ids that was ~17 ms a statement, and a
batch runs several. Other databases get the IN list. Registered on every field at start-up
(marketplace.apps); on a relation it takes ids or model instances."""

from django.db.models import Field, ForeignObject, Lookup, Model
from django.db.models.lookups import In

_INTEGER_TYPES = {
    "AutoField", "BigAutoField", "SmallAutoField", "IntegerField", "BigIntegerField",
    "SmallIntegerField", "PositiveIntegerField", "PositiveBigIntegerField",
    "PositiveSmallIntegerField",
}


class AnyOf(Lookup):
    lookup_name = "any_of"
    prepare_rhs = False

    def get_prep_lookup(self):
        field = self.lhs.output_field
        return [field.get_prep_value(v.pk if isinstance(v, Model) else v) for v in self.rhs]

    def as_sql(self, compiler, connection):
        return In(self.lhs, self.rhs).as_sql(compiler, connection)

    def as_postgresql(self, compiler, connection):
        lhs, lhs_params = self.process_lhs(compiler, connection)
        field = self.lhs.output_field
        values = [field.get_db_prep_value(value, connection, prepared=True) for value in self.rhs]
        target = getattr(field, "target_field", field)  # a foreign key compares its target's type
        cast = "::bigint[]" if target.get_internal_type() in _INTEGER_TYPES else ""
        return f"{lhs} = ANY(%s{cast})", [*lhs_params, values]


def register() -> None:
    Field.register_lookup(AnyOf)
    ForeignObject.register_lookup(AnyOf)  # relations keep lookups of their own (Django's design)
