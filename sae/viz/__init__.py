"""Pure functions from data to Plotly figures and images (no Streamlit).
"""
