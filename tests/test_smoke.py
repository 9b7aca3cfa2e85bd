from wagtail_calltracking.numbers.phone import format_number, normalize_caller, to_e164

from .factories import next_e164


def test_phone_helpers():
    assert to_e164("(212) 555-0100") is None or to_e164("(212) 555-0100").startswith("+1")
    assert to_e164("+442079460000") == "+442079460000"
    assert to_e164("442079460000") == "+442079460000"  # Vonage sends no "+"
    assert to_e164("not a number") is None
    assert normalize_caller("restricted") == "anonymous"
    assert format_number("+12125550123") == "(212) 555-0123"
    assert to_e164(next_e164())


def test_home_page_renders(client, home_page):
    response = client.get("/")
    assert response.status_code == 200
