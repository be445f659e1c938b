"""Shared Streamlit widgets: the guard, generated forms and tables, record pages."""
