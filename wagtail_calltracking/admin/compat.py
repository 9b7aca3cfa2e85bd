"""Admin building blocks that moved between Wagtail 7.0 LTS and 7.1+/8.x."""

from django.contrib.humanize.templatetags.humanize import intcomma
from wagtail.admin.ui.tables import Column

try:
    from wagtail.admin.ui.tables import NumberColumn
except ImportError:  # Wagtail 7.0

    class NumberColumn(Column):
        """Locale-aware number formatting (shipped by Wagtail from 7.1)."""

        def get_cell_context_data(self, instance, parent_context):
            context = super().get_cell_context_data(instance, parent_context)
            context.setdefault("raw_value", self.get_value(instance))
            context["value"] = intcomma(context["raw_value"])
            return context


try:
    # The "more" dropdown of listing rows (Wagtail 7.1+).
    from wagtail.admin.ui.menus import MenuItem
except ImportError:  # Wagtail 7.0: the same dropdown takes listing buttons
    from wagtail.admin.widgets import ListingButton as MenuItem

__all__ = ["MenuItem", "NumberColumn"]
