"""Placeholder replaced by the numbers work (issue 3)."""

from django import template

register = template.Library()
