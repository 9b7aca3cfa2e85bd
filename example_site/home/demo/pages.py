"""Demo content: a home page and a few service pages under the default site."""

from wagtail.models import Page, Site

from home.models import ContentPage, HomePage

SERVICES = [
    ("Emergency plumbing", "emergency-plumbing", "Burst pipe at 3 a.m.? We answer around the clock."),
    ("Drain cleaning", "drain-cleaning", "Blocked drains cleared the same day, guaranteed."),
    ("Water heaters", "water-heaters", "Repair and installation of tank and tankless heaters."),
    ("Bathroom remodeling", "bathroom-remodeling", "From a new faucet to a complete bathroom."),
    ("Contact", "contact", "Call us or drop by: 100 Main Street, Springfield."),
]


def load(stdout):
    home = HomePage.objects.first()
    if home is None:
        root = Page.get_first_root_node()
        home = root.add_child(
            instance=HomePage(
                title="Acme Plumbing",
                slug="acme-home",
                intro="Licensed plumbers in Springfield since 1987.",
                body="<p>Fast, friendly, fixed-price plumbing. Call the number above.</p>",
            )
        )
        # Wagtail's default welcome page is replaced as the site root.
        welcome = Page.objects.filter(depth=2, slug="home").exclude(pk=home.pk).first()
        site = Site.objects.filter(is_default_site=True).first()
        if site is None:
            site = Site(is_default_site=True)
        site.hostname, site.port, site.root_page, site.site_name = "localhost", 80, home, "Acme Plumbing"
        site.save()
        if welcome is not None:
            welcome.delete()
        stdout.write("  created the home page")
    for title, slug, intro in SERVICES:
        if not home.get_children().filter(slug=slug).exists():
            page = home.add_child(
                instance=ContentPage(
                    title=title, slug=slug, intro=intro, show_in_menus=True,
                    body=f"<p>{intro}</p><p>Call now for a free quote.</p>",
                )
            )
            page.save_revision().publish()
    return home
