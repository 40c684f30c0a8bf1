"""What every page shares: CSRF and the Content-Security-Policy, HTMX, static files, templates."""
