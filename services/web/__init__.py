"""The web app: server-rendered pages over the public API, for people."""
