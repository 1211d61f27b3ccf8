"""The management API's routes, one Powertools Router per route group."""
