"""The console's pages: scripts ui/app.py routes to (a package so the import contracts see them)."""
