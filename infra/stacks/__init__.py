"""One stack per concern; app.py wires them: storage → analytics, pipeline → api."""
