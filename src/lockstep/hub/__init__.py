"""The hub's built web assets (sources in web/, built by make hub)."""
