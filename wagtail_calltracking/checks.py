"""System checks: misconfiguration reported with hints (never by mutating settings)."""
