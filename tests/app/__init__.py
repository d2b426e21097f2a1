"""Tests of the application as a whole at its HTTP edge: the app.py factory's route table,
the JSON error shape (errors.py) and JSON bodies (jsonbody.py) on every route, the server's
request limits (server.py, deadlines.py), and hostile values across all routes."""
