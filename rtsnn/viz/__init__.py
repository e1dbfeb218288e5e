"""Live dashboard: the session-side monitor channel (monitor.py, no Qt), its reader
(client.py, no Qt) and the pyqtgraph window (dashboard.py, needs the dashboard extra)."""
