"""Gateway service: the Dash trading console and the REST API."""
