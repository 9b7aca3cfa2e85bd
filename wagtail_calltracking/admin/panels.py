"""Edit-form panels: the pool's numbers edited inline on the pool's page."""

from __future__ import annotations

from django.forms import Media
from wagtail.admin.panels import Panel


class PoolNumbersPanel(Panel):
    """Renders ``form.numbers_formset`` (see :class:`~.forms.NumberPoolForm`) as a table of
    rows with an "Add a number" button; removing a row takes the number out of the pool."""

    def __init__(self, heading="", **kwargs):
        super().__init__(heading=heading, **kwargs)

    class BoundPanel(Panel.BoundPanel):
        template_name = "wagtail_calltracking/admin/panels/pool_numbers.html"

        @property
        def formset(self):
            return self.form.numbers_formset

        def get_context_data(self, parent_context=None):
            context = super().get_context_data(parent_context)
            context["formset"] = self.formset
            return context

        @property
        def media(self):
            return Media(
                js=["wagtail_calltracking/admin/pool-numbers.js"],
                css={"all": ["wagtail_calltracking/admin/admin.css"]},
            )
