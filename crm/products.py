"""Products: the catalog deals are priced from. Everyone reads it; managers and admins change it."""
from __future__ import annotations

from crm import records
from crm.deals import CURRENCIES
from crm.fields import Field

UNITS = ("piece", "licence", "subscription_month", "subscription_year", "hour", "day",
         "project", "kg", "litre", "metre", "box")

FIELDS = [
    Field("name", "Name", required=True, searchable=True, in_list=True),
    Field("code", "Code", max_length=60, searchable=True, in_list=True,
          help="Your article number or SKU; unique among live products"),
    Field("category", "Category", max_length=100, searchable=True, in_list=True),
    Field("unit_price", "Unit price", "money", min_value=0, max_value=1e12, in_list=True),
    Field("currency", "Currency", "choice", required=True, choices=CURRENCIES, default="USD",
          filter=True, in_list=True),
    Field("active", "Active", "bool", default=True, filter=True, in_list=True,
          help="Inactive products stay on old deals but are no longer offered for new ones"),
    Field("unit", "Unit", "choice", choices=UNITS, in_list=True,
          help="What one unit price buys"),
    Field("description", "Description", "longtext"),
    Field("price_notes", "Price structure", "longtext",
          help="How the price is made up: discounts, tiers, bundles, what is included"),
]

PRODUCTS = records.Entity(
    table="products", label="Product", plural="Products", code_fields=FIELDS, title_sql="t.name",
    default_sort=("name", "asc"), shared=True, write_role="manager", unique=("code",),
)
