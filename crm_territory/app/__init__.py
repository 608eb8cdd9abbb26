"""The territory analytics web app (Streamlit, read-only): ``make app``. ``main.py`` is the entry point."""
