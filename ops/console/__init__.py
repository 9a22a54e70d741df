"""The operator console: the System Overview (the admin index), its figures and charts."""
