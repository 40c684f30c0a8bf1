"""Users and their API tokens: accounts, the token API, the command line, signing in."""
