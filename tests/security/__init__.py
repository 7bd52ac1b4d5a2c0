"""Security battery (SECURITY.md); a package so its module names never clash with tests/."""
