"""Who is calling and what they may do: principals, scopes, ``authorize``, credentials, tokens."""
